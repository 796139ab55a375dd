"""Type stubs of the native module (python/src/lib.rs)."""

from typing import Callable, List, Optional, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

class PromaxError(Exception):
    """An error of promax, with the message the command line prints."""

def train(
    config: str,
    sets: List[str],
    out: Optional[str] = None,
    overwrite: bool = False,
    progress: Optional[Callable[[str], object]] = None,
) -> str: ...
def resume(run_dir: str, progress: Optional[Callable[[str], object]] = None) -> str: ...
def matrix(
    command: str, config: str, sets: List[str], exe: str, out: Optional[str] = None, jobs: int = 1
) -> str: ...
def config_json(run_dir: str) -> str: ...
def embeddings(run_dir: str) -> Tuple[npt.NDArray[np.float32], int]: ...
def cli(argv: List[str]) -> int: ...

class RunRecommender:
    def __init__(self, run_dir: str) -> None: ...
    @property
    def n_users(self) -> int: ...
    def top_k(
        self, users: List[str], k: int
    ) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def tokens(self) -> Optional[Tuple[List[str], List[str]]]: ...
