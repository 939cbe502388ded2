//! [`section!`]: one definition per setting. A setting is written once, with its help text,
//! its flag and environment variable, its type, its default and its check, and the macro makes
//! of a section of them:
//!
//! - the section itself, resolved (`pub struct Limits { pub max_upload_bytes: u64, .. }`),
//!   with its defaults (`Default`) and its checks (`check`);
//! - the section as one layer of configuration gives it (`LimitsFlags`: every field optional,
//!   parsed by clap from flags and the environment, and merged with the TOML file's keys);
//! - the names of its keys (`KEYS`), so that a file naming a setting that does not exist is
//!   refused.
//!
//! The syntax of a setting (doc comments become the help text):
//!
//! ```text
//! /// Largest accepted upload body, in bytes.
//! #[arg(long, env = "MP3C_MAX_UPLOAD_BYTES")]
//! max_upload_bytes: u64 = 2 << 30, check at_least(1);
//! /// An optional one: no default, absent unless given.
//! #[arg(long, env = "MP3C_METRICS_LISTEN")]
//! metrics_listen: optional SocketAddr;
//! ```

/// A check of a setting's value: the reason it is refused, if it is.
pub type Check<T> = fn(&T) -> Result<(), String>;

/// A value of at least `min`.
pub fn at_least<T: PartialOrd + Copy + std::fmt::Display>(min: T) -> impl Fn(&T) -> Result<(), String> {
    move |value| if *value >= min { Ok(()) } else { Err(format!("must be at least {min}")) }
}

/// A value from `min` to `max`.
pub fn within<T: PartialOrd + Copy + std::fmt::Display>(min: T, max: T) -> impl Fn(&T) -> Result<(), String> {
    move |value| if (min..=max).contains(value) { Ok(()) } else { Err(format!("must be between {min} and {max}")) }
}

macro_rules! section {
    (
        $(#[doc = $section_doc:literal])*
        pub struct $section:ident, flags $flags:ident { $($body:tt)* }
    ) => {
        $crate::config::section::section!(@setting [$(#[doc = $section_doc])*] $section $flags [] $($body)*);
    };
    // An optional setting (absent unless given), with an optional check.
    (@setting $docs:tt $section:ident $flags:ident [$($done:tt)*]
        $(#[doc = $doc:literal])* #[arg($($arg:tt)*)] $name:ident : optional $ty:ty $(, check $check:expr)? ; $($rest:tt)*
    ) => {
        $crate::config::section::section!(@setting $docs $section $flags [$($done)*
            { [$(#[doc = $doc])*] [$($arg)*] $name [Option<$ty>] [$ty] [None] [$($check)?] }
        ] $($rest)*);
    };
    // A setting with a default, and an optional check.
    (@setting $docs:tt $section:ident $flags:ident [$($done:tt)*]
        $(#[doc = $doc:literal])* #[arg($($arg:tt)*)] $name:ident : $ty:ty = $default:expr $(, check $check:expr)? ; $($rest:tt)*
    ) => {
        $crate::config::section::section!(@setting $docs $section $flags [$($done)*
            { [$(#[doc = $doc])*] [$($arg)*] $name [$ty] [$ty] [$default] [$($check)?] }
        ] $($rest)*);
    };
    (@setting [$(#[doc = $section_doc:literal])*] $section:ident $flags:ident [$(
        { [$(#[doc = $doc:literal])*] [$($arg:tt)*] $name:ident [$ty:ty] [$flag:ty] [$default:expr] [$($check:expr)?] }
    )*]) => {
        $(#[doc = $section_doc])*
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct $section {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for $section {
            fn default() -> Self {
                $section { $( $name: $default, )* }
            }
        }

        impl $section {
            /// The keys of this section's settings (the flags' names, with underscores).
            pub const KEYS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Refuses a value its setting does not take, naming the setting.
            pub fn check(&self) -> anyhow::Result<()> {
                $($(
                    let check: $crate::config::section::Check<$ty> = |value| ($check)(value);
                    check(&self.$name).map_err(|why| anyhow::anyhow!("{} {why}", stringify!($name)))?;
                )?)*
                Ok(())
            }
        }

        #[doc = concat!("One layer's [`", stringify!($section), "`] settings (flags, environment): only what it gives.")]
        #[derive(clap::Args, serde::Serialize, Debug, Default, Clone)]
        pub struct $flags {
            $(
                $(#[doc = $doc])*
                #[arg($($arg)*)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$flag>,
            )*
        }
    };
}
pub(crate) use section;
