//! The adapters from a safe [`BackboneImpl`] / [`AugmenterImpl`] to the ABI traits, and
//! the root modules and boxes built from them. Every call is guarded: neither a panic nor
//! an error crosses the FFI boundary raw.

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RSlice, RSliceMut, RStr, RString, RVec},
};

use super::*;

/// Runs plugin code so that neither a panic nor an error crosses the FFI boundary raw.
fn guarded<T>(
    plugin: &str,
    what: &str,
    f: impl FnOnce() -> PluginResult<T>,
) -> RResult<T, RString> {
    match catch_panic(f) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(format!("plugin `{plugin}`: {what}: {e}").into()),
        Err(p) => RErr(format!("plugin `{plugin}` panicked in {what}: {p}").into()),
    }
}

/// Adapts a safe [`BackboneImpl`] to the ABI trait.
struct BackboneAdapter<T>(T);

impl<T: BackboneImpl> Backbone for BackboneAdapter<T> {
    fn tables(&self) -> RVec<TableSpec> {
        catch_panic(|| self.0.tables().into()).unwrap_or_default()
    }
    fn graph_spec(&self) -> GraphSpec {
        catch_panic(|| self.0.graph_spec()).unwrap_or_default()
    }
    fn width(&self) -> usize {
        catch_panic(|| self.0.width()).unwrap_or(0)
    }
    fn forward(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        out: EmbMut<'_>,
    ) -> RResult<(), RString> {
        guarded(T::NAME, "forward", || {
            self.0.forward(
                &Compute::new(k),
                Params::from_abi(params),
                &graph,
                EmbBuf::from_abi(out),
            )
        })
    }
    fn backward(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        d_out: EmbRef<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<(), RString> {
        guarded(T::NAME, "backward", || {
            self.0.backward(
                &Compute::new(k),
                Params::from_abi(params),
                &graph,
                Emb::from_abi(d_out),
                Grads::from_abi(grads),
            )
        })
    }
    fn aux_loss(
        &mut self,
        k: KernelsRef<'_>,
        params: ParamsRef<'_>,
        graph: GraphView<'_>,
        batch: BatchView<'_>,
        emb: EmbRef<'_>,
        d_emb: EmbMut<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<RVec<LossTerm>, RString> {
        guarded(T::NAME, "aux_loss", || {
            self.0
                .aux_loss(
                    &Compute::new(k),
                    Params::from_abi(params),
                    &graph,
                    &batch,
                    Emb::from_abi(emb),
                    EmbBuf::from_abi(d_emb),
                    Grads::from_abi(grads),
                )
                .map(RVec::from)
        })
    }
    fn node_inputs(&self) -> RVec<u32> {
        catch_panic(|| {
            self.0
                .node_inputs()
                .into_iter()
                .map(|t| u32::try_from(t).unwrap_or(u32::MAX))
                .collect()
        })
        .unwrap_or_default()
    }
}

/// Adapts a safe [`AugmenterImpl`] to the ABI trait.
struct AugmenterAdapter<T>(T);

impl<T: AugmenterImpl> Augmenter for AugmenterAdapter<T> {
    fn tables(&self) -> RVec<TableSpec> {
        catch_panic(|| self.0.tables().into()).unwrap_or_default()
    }
    fn views(&self) -> RVec<ViewSpec> {
        catch_panic(|| self.0.views().into()).unwrap_or_default()
    }
    fn loss(
        &mut self,
        k: KernelsRef<'_>,
        batch: BatchView<'_>,
        embs: RSlice<'_, EmbRef<'_>>,
        d_embs: RSliceMut<'_, EmbMut<'_>>,
        params: ParamsRef<'_>,
        grads: GradsMut<'_>,
    ) -> RResult<RVec<LossTerm>, RString> {
        guarded(T::NAME, "loss", || {
            let embs: Vec<Emb<'_>> = embs.iter().map(|e| Emb::from_abi(*e)).collect();
            let mut d: Vec<EmbBuf<'_>> = d_embs
                .into_mut_slice()
                .iter_mut()
                .map(|e| EmbBuf {
                    data: e.data.as_mut_slice(),
                    n_users: e.n_users,
                    n_items: e.n_items,
                    width: e.width,
                })
                .collect();
            self.0
                .loss(
                    &Compute::new(k),
                    &batch,
                    &embs,
                    &mut d,
                    Params::from_abi(params),
                    Grads::from_abi(grads),
                )
                .map(RVec::from)
        })
    }
    fn masks_inputs(&self) -> bool {
        catch_panic(|| self.0.masks_inputs()).unwrap_or(false)
    }
    fn input_mask(
        &mut self,
        batch: BatchView<'_>,
        params: ParamsRef<'_>,
    ) -> RResult<InputMask, RString> {
        guarded(T::NAME, "input_mask", || {
            let m = self.0.input_mask(&batch, Params::from_abi(params))?;
            let table = u32::try_from(m.table)
                .map_err(|_| format!("input_mask table index {} is out of range", m.table))?;
            Ok(InputMask {
                nodes: m.nodes.into(),
                table,
            })
        })
    }
}

fn check_kind<T>(name: &str, is: PluginKind, wanted: PluginKind) -> PluginResult<T> {
    Err(format!(
        "`{name}` is a{} {}, not a{} {}",
        if is == PluginKind::Augmenter { "n" } else { "" },
        is.as_str(),
        if wanted == PluginKind::Augmenter {
            "n"
        } else {
            ""
        },
        wanted.as_str()
    ))
}

extern "C" fn backbone_info<T: BackboneImpl>() -> RResult<PluginInfo, RString> {
    guarded(T::NAME, "info", || {
        Ok(plugin_info::<T>(PluginKind::Backbone))
    })
}

extern "C" fn augmenter_info<T: AugmenterImpl>() -> RResult<PluginInfo, RString> {
    guarded(T::NAME, "info", || {
        Ok(plugin_info::<T>(PluginKind::Augmenter))
    })
}

extern "C" fn make_backbone<T: BackboneImpl>(
    hparams: RStr<'_>,
    env: &PluginEnv<'_>,
) -> RResult<BackboneBox, RString> {
    guarded(T::NAME, "hyperparameters", || {
        let h = parse_hparams::<T::Hparams>(hparams.as_str())?;
        let b = T::new(h, &Env::from_abi(env))?;
        Ok(Backbone_TO::from_value(BackboneAdapter(b), TD_Opaque))
    })
}

extern "C" fn make_augmenter<T: AugmenterImpl>(
    hparams: RStr<'_>,
    env: &PluginEnv<'_>,
) -> RResult<AugmenterBox, RString> {
    guarded(T::NAME, "hyperparameters", || {
        let h = parse_hparams::<T::Hparams>(hparams.as_str())?;
        let a = T::new(h, &Env::from_abi(env))?;
        Ok(Augmenter_TO::from_value(AugmenterAdapter(a), TD_Opaque))
    })
}

extern "C" fn not_an_augmenter<T: PluginMeta>(
    _: RStr<'_>,
    _: &PluginEnv<'_>,
) -> RResult<AugmenterBox, RString> {
    guarded(T::NAME, "constructor", || {
        check_kind(T::NAME, PluginKind::Backbone, PluginKind::Augmenter)
    })
}

extern "C" fn not_a_backbone<T: PluginMeta>(
    _: RStr<'_>,
    _: &PluginEnv<'_>,
) -> RResult<BackboneBox, RString> {
    guarded(T::NAME, "constructor", || {
        check_kind(T::NAME, PluginKind::Augmenter, PluginKind::Backbone)
    })
}

/// Builds the root module of a backbone plugin (use [`declare_backbone!`](crate::declare_backbone)).
pub fn backbone_module<T: BackboneImpl>() -> PluginModRef {
    PluginMod {
        info: backbone_info::<T>,
        new_backbone: make_backbone::<T>,
        new_augmenter: not_an_augmenter::<T>,
    }
    .leak_into_prefix()
}

/// Builds the root module of an augmenter plugin (use [`declare_augmenter!`](crate::declare_augmenter)).
pub fn augmenter_module<T: AugmenterImpl>() -> PluginModRef {
    PluginMod {
        info: augmenter_info::<T>,
        new_backbone: not_a_backbone::<T>,
        new_augmenter: make_augmenter::<T>,
    }
    .leak_into_prefix()
}

/// Wraps a safe value into the ABI object without a root module (tests, static use).
pub fn backbone_box<T: BackboneImpl>(b: T) -> BackboneBox {
    Backbone_TO::from_value(BackboneAdapter(b), TD_Opaque)
}

/// Wraps a safe value into the ABI object without a root module (tests, static use).
pub fn augmenter_box<T: AugmenterImpl>(a: T) -> AugmenterBox {
    Augmenter_TO::from_value(AugmenterAdapter(a), TD_Opaque)
}
