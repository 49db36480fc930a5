//! Entry points for the fuzz targets (tests/fuzz_config.rs), which run outside the crate: a
//! format reader alone, on text. The expander is reached through [`super::load`] itself.
//! Not an API: hidden from the docs, and free to change with the targets.

use std::path::Path;

use super::source::{parse_raw, ConfigName};
use super::ConfigError;

/// Reads `text` with the reader `name`'s extension picks (`fuzz.xml`: the XML reader), the
/// `[uwsgi]` section; the number of raw options it found.
pub fn read_section(name: &Path, text: &str) -> Result<usize, ConfigError> {
    parse_raw(&ConfigName::parse(name), text).map(|entries| entries.len())
}
