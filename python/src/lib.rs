//! `promax._native`: the promax library for Python. Training, compare and tune run on
//! the library's own code paths with the GIL released; errors become `PromaxError` with
//! the message the command line prints; embeddings and recommendations come back as NumPy
//! arrays built over the library's own buffers. The Python half (`pysrc/promax`) wraps
//! these calls in `train`, `compare`, `tune`, `load_run` and the `Run` class.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use promax::compare::{CompareArgs, ExecutorKind};
use promax::recommend::Recommender;
use promax::run::TrainOptions;
use promax::runfolder::EpochRow;
use promax::trainer::EpochHook;
use promax::tune::TuneArgs;

create_exception!(
    _native,
    PromaxError,
    PyException,
    "An error of promax, with the message the command line prints (file, line, key, nearest key)."
);

fn to_py(e: anyhow::Error) -> PyErr {
    PromaxError::new_err(format!("{e:#}"))
}

fn text(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `f` (a training call) on a worker thread with an epoch hook that calls `progress`
/// (if any) with each epoch's row as JSON text, while this thread, the one Python delivers
/// signals to, polls for Ctrl-C. A Python exception (from the callback, or the
/// KeyboardInterrupt of a signal) stops the run after its epoch and is re-raised as itself;
/// the run folder stays resumable.
fn with_hook<T>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    f: impl FnOnce(&EpochHook<'_>) -> anyhow::Result<T> + Send,
) -> PyResult<T>
where
    T: Send,
{
    let raised: Mutex<Option<PyErr>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let keep = |e: PyErr| {
        let mut slot = raised.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
        stop.store(true, Ordering::SeqCst);
    };
    let hook = |row: &EpochRow| -> anyhow::Result<()> {
        if let Some(cb) = &progress {
            let json = serde_json::to_string(row).unwrap_or_default();
            if let Err(e) = Python::attach(|py| cb.call1(py, (json,)).map(drop)) {
                keep(e);
            }
        }
        if stop.load(Ordering::SeqCst) {
            anyhow::bail!("interrupted from Python");
        }
        Ok(())
    };
    let result = py.detach(|| {
        std::thread::scope(|s| {
            let worker = s.spawn(|| f(&hook));
            while !worker.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(50));
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    keep(e);
                }
            }
            worker
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the training thread panicked")))
        })
    });
    if let Some(e) = raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    result.map_err(to_py)
}

/// Trains a config into a run folder; returns the folder.
#[pyfunction]
#[pyo3(signature = (config, sets, out=None, overwrite=false, progress=None))]
fn train(
    py: Python<'_>,
    config: PathBuf,
    sets: Vec<String>,
    out: Option<PathBuf>,
    overwrite: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    with_hook(py, progress, |hook| {
        let opts = TrainOptions {
            out: out.as_deref(),
            overwrite,
            on_epoch: Some(hook),
        };
        promax::run::train(&config, &sets, opts)
    })
    .map(|(dir, _)| text(&dir))
}

/// Continues an interrupted run from its checkpoint; returns the folder.
#[pyfunction]
#[pyo3(signature = (run_dir, progress=None))]
fn resume(py: Python<'_>, run_dir: PathBuf, progress: Option<Py<PyAny>>) -> PyResult<String> {
    with_hook(py, progress, |hook| {
        promax::run::resume(&run_dir, Some(hook))
    })
    .map(|_| text(&run_dir))
}

/// `command` = "compare" (a compare file's matrix and its report) or "tune" (a study on a
/// validation metric), as on the command line: the cells train as child processes of
/// `exe` (the wheel's own `promax` command), `jobs` at a time, into `out` (default
/// `runs/<file name>`). Returns the output folder.
#[pyfunction]
#[pyo3(signature = (command, config, sets, exe, out=None, jobs=1))]
fn matrix(
    py: Python<'_>,
    command: &str,
    config: PathBuf,
    sets: Vec<String>,
    exe: PathBuf,
    out: Option<PathBuf>,
    jobs: usize,
) -> PyResult<String> {
    let out = out.unwrap_or_else(|| {
        Path::new("runs").join(promax::compare::spec::stem_or(&config, command))
    });
    let run = || match command {
        "compare" => {
            let args = CompareArgs {
                config,
                sets,
                out: Some(out.clone()),
                jobs,
                report_only: false,
                max_cells: None,
                executor: ExecutorKind::Local,
            };
            promax::compare::compare(&args, &exe)
        }
        "tune" => {
            let args = TuneArgs {
                config,
                sets,
                out: Some(out.clone()),
                jobs,
                max_cells: None,
                executor: ExecutorKind::Local,
            };
            promax::tune::tune(&args, &exe)
        }
        other => Err(anyhow::anyhow!(
            "unknown command {other:?}: compare or tune"
        )),
    };
    py.detach(run).map_err(to_py)?;
    Ok(text(&out))
}

/// The resolved config of a run folder, as JSON text.
#[pyfunction]
fn config_json(run_dir: PathBuf) -> PyResult<String> {
    let cfg = promax::config::load_run(&run_dir.join("config.toml"))
        .map_err(|e| to_py(anyhow::Error::new(e)))?;
    serde_json::to_string(&cfg).map_err(|e| to_py(e.into()))
}

/// The final embeddings of a finished run: one `(n_users + n_items) × width` float32 array
/// that owns the buffer read from the run folder (no copy), and the number of users.
#[pyfunction]
fn embeddings<'py>(py: Python<'py>, run_dir: PathBuf) -> PyResult<(Bound<'py, PyAny>, usize)> {
    let rec = py
        .detach(|| Recommender::from_run(&run_dir))
        .map_err(to_py)?;
    let (emb, width, n_users) = rec.into_embeddings();
    let rows = emb.len() / width.max(1);
    let flat = PyArray1::from_vec(py, emb);
    let table = flat.reshape([rows, width])?;
    Ok((table.into_any(), n_users))
}

/// A finished run ready to recommend (its train split and final embeddings in memory).
#[pyclass(module = "promax._native")]
struct RunRecommender {
    rec: Recommender,
}

#[pymethods]
impl RunRecommender {
    #[new]
    fn new(py: Python<'_>, run_dir: PathBuf) -> PyResult<Self> {
        let rec = py
            .detach(|| Recommender::from_run(&run_dir))
            .map_err(to_py)?;
        Ok(RunRecommender { rec })
    }

    /// The top `k` items of each user (named as `promax recommend --users` names them),
    /// train items excluded: `users × k` item ids (int64) and scores (float32), a user
    /// with fewer than `k` rankable items padded with -1 and NaN.
    fn top_k<'py>(
        &self,
        py: Python<'py>,
        users: Vec<String>,
        k: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let ids = self.rec.user_ids(&users).map_err(to_py)?;
        if ids.len().checked_mul(k).is_none_or(|cells| cells > 1 << 31) {
            return Err(PromaxError::new_err(format!(
                "{} users × k = {k} results do not fit in memory; ask for fewer",
                ids.len()
            )));
        }
        let ranked = py.detach(|| self.rec.top_k(&ids, k)).map_err(to_py)?;
        let mut items = vec![-1i64; ids.len() * k];
        let mut scores = vec![f32::NAN; ids.len() * k];
        for (row, recs) in ranked.iter().enumerate() {
            for (j, r) in recs.iter().enumerate() {
                items[row * k + j] = i64::from(r.item);
                scores[row * k + j] = r.score;
            }
        }
        let shape = [ids.len(), k];
        let items = PyArray1::from_vec(py, items).reshape(shape)?;
        let scores = PyArray1::from_vec(py, scores).reshape(shape)?;
        Ok((items.into_any(), scores.into_any()))
    }

    /// The dataset's own user and item ids (RecBole tokens), or None when the ids are
    /// the files' 0-based ones.
    fn tokens(&self) -> Option<(Vec<String>, Vec<String>)> {
        self.rec
            .id_maps()
            .map(|m| (m.users.clone(), m.items.clone()))
    }

    #[getter]
    fn n_users(&self) -> usize {
        self.rec.n_users()
    }
}

/// The `promax` command line (the wheel's console script): `argv` with the program name
/// first; returns the exit status.
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| promax::cli::main(argv))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    promax::cli::init_logging();
    m.add("PromaxError", m.py().get_type::<PromaxError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<RunRecommender>()?;
    for f in [
        wrap_pyfunction!(train, m)?,
        wrap_pyfunction!(resume, m)?,
        wrap_pyfunction!(matrix, m)?,
        wrap_pyfunction!(config_json, m)?,
        wrap_pyfunction!(embeddings, m)?,
        wrap_pyfunction!(cli, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}
