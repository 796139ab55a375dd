#![deny(missing_docs)]
#![allow(non_local_definitions)] // emitted by abi_stable's #[sabi_trait] expansion
#![allow(clippy::too_many_arguments)] // ABI methods mirror the training step's inputs one to one
//! The promax plugin ABI and SDK.
//!
//! - [`abi`]: the `#[repr(C)]`, layout-checked types and trait objects that cross the
//!   boundary between the `promax` host and a plugin library.
//! - [`sdk`]: safe traits ([`sdk::BackboneImpl`], [`sdk::AugmenterImpl`]) and the adapters
//!   that turn them into ABI objects, catching panics at the boundary; the helpers every
//!   plugin shares: [`sdk::rows`] (gather, scatter, distinct ids, node tables),
//!   [`sdk::rng`] (seeded SplitMix64 streams), [`sdk::propagate`] (LightGCN's layer sum).
//! - [`testing`]: finite-difference gradient checks any plugin author can run, and a
//!   reference kernel table and graph builder, so plugin tests need no compute backend.
//!
//! Hyperparameters are a serde struct deriving [`JsonSchema`](schemars::JsonSchema) (from
//! the prelude, with `#[schemars(crate = "promax_plugin_api::schemars")]`): each field's
//! `///` comment is its doc in `promax plugins show`.
//!
//! A backbone plugin in full:
//! ```ignore
//! use promax_plugin_api::prelude::*;
//! struct Mine { /* ... */ }
//! impl PluginMeta for Mine { /* name, version, hyperparameters */ }
//! impl BackboneImpl for Mine { /* new, tables, width, forward, backward */ }
//! promax_plugin_api::declare_backbone!(Mine);      // gives `pub fn root_module()`
//! promax_plugin_api::export_plugin!(root_module);   // in the cdylib crate only
//! ```

pub mod abi;
pub mod sdk;
pub mod testing;

pub use abi::*;

/// This crate's version: a plugin built against another minor version (0.x) is refused.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");
pub use abi_stable;
pub use schemars;

/// Everything a plugin author needs, in one import.
pub mod prelude {
    pub use crate::abi::{
        BatchView, CsrView, GemmSpec, GraphSpec, GraphView, Init, LossTerm, PluginModRef,
        TableSpec, TopkRequest, ViewSpec,
    };
    pub use crate::sdk::{
        table, term, AugmenterImpl, BackboneImpl, Compute, Emb, EmbBuf, Env, Grads, Params,
        PluginMeta, PluginResult,
    };
    pub use schemars::JsonSchema;
}

/// Gives the crate `pub fn root_module() -> PluginModRef` for a [`sdk::BackboneImpl`] type.
#[macro_export]
macro_rules! declare_backbone {
    ($ty:ty) => {
        /// This plugin's root module: linked statically by the host, or exported by a
        /// `cdylib` crate with `export_plugin!`.
        pub fn root_module() -> $crate::PluginModRef {
            static MODULE: ::std::sync::OnceLock<$crate::PluginModRef> =
                ::std::sync::OnceLock::new();
            *MODULE.get_or_init($crate::sdk::backbone_module::<$ty>)
        }
    };
}

/// Gives the crate `pub fn root_module() -> PluginModRef` for a [`sdk::AugmenterImpl`] type.
#[macro_export]
macro_rules! declare_augmenter {
    ($ty:ty) => {
        /// This plugin's root module: linked statically by the host, or exported by a
        /// `cdylib` crate with `export_plugin!`.
        pub fn root_module() -> $crate::PluginModRef {
            static MODULE: ::std::sync::OnceLock<$crate::PluginModRef> =
                ::std::sync::OnceLock::new();
            *MODULE.get_or_init($crate::sdk::augmenter_module::<$ty>)
        }
    };
}

/// Exports a root module from a `cdylib` crate so the host can load it. Use it once per
/// library: the exported symbol name is fixed.
#[macro_export]
macro_rules! export_plugin {
    ($root:path) => {
        /// The symbol the host looks up when it loads this library.
        #[$crate::abi_stable::export_root_module]
        pub fn promax_export_root_module() -> $crate::PluginModRef {
            $root()
        }
    };
}
