//! One file per section of the configuration: its type, its defaults, and the checks of
//! its own values (`validate`). Checks that span sections stay in
//! [`super::Config::validate`].

/// A string-valued option as an enum: written and read as its lowercase name, so that a
/// typo is refused when the config is parsed (the loader reports the key, its layer and
/// the allowed names). Integers are refused too, where a derived enum would take a
/// variant index.
macro_rules! named_options {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every accepted name.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name as written in a config file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        /// Compares with a name as written in a config file.
        impl PartialEq<&str> for $name {
            fn eq(&self, name: &&str) -> bool {
                self.as_str() == *name
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                match name.as_str() {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(serde::de::Error::unknown_variant(&name, Self::NAMES)),
                }
            }
        }
    };
}

mod augment;
mod data;
mod device;
mod eval;
pub(super) mod llm;
mod model;
mod profile;
mod run;
mod train;

pub use augment::{AugmentConfig, AugmentSource, ReductionMode, RerankMode};
pub use data::{
    DataConfig, DataKind, DuplicatePolicy, ProfilesConfig, RecboleConfig, RecboleOrder,
    RecboleSplit, SyntheticConfig,
};
pub use device::Device;
pub use eval::{EvalConfig, METRICS};
pub use llm::{
    LlmConfig, MAX_BACKOFF_MS, MAX_CONCURRENCY, MAX_RETRIES, MAX_TIMEOUT_SECS, MAX_TOKENS,
    RESERVED_BODY_KEYS, RESPONSE_FORMATS,
};
pub use model::ModelConfig;
pub use profile::{EmbedConfig, ProfileConfig, MAX_EMBED_BATCH};
pub use run::RunConfig;
pub use train::{KernelPathChoice, TrainConfig};
