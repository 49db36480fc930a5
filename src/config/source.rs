//! From a config name (`app.ini`, `app.ini:section`) to the raw `(key, value, line)` pairs of
//! its section, by picking the reader for the file's format.

use std::path::{Path, PathBuf};

use super::limits::Overrun;
use super::{ini, json, xml, yaml, ConfigError, CONFIG_EXTENSIONS};

/// The section read when the name does not pick one.
pub(crate) const DEFAULT_SECTION: &str = "uwsgi";

/// One option as the file spells it, before any expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub key: String,
    pub value: String,
    pub line: Option<usize>,
}

impl RawEntry {
    pub fn new(key: impl Into<String>, value: impl Into<String>, line: Option<usize>) -> Self {
        RawEntry {
            key: key.into(),
            value: value.into(),
            line,
        }
    }
}

/// What a reader reports when the text is malformed, or goes over a limit (nesting deeper
/// than [`MAX_DEPTH`](super::limits::MAX_DEPTH), more than
/// [`MAX_OPTIONS`](super::limits::MAX_OPTIONS)); the caller adds the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub over: Option<Overrun>,
}

impl SyntaxError {
    pub fn at(line: usize, column: Option<usize>, message: impl Into<String>) -> Self {
        SyntaxError {
            line: Some(line),
            column,
            message: message.into(),
            over: None,
        }
    }

    /// The text nests deeper than the limit, first at `line`.
    pub fn too_deep(line: usize) -> Self {
        SyntaxError::over(line, Overrun::Depth)
    }

    /// The text holds more options (elements, values) than the limit, the first too many at
    /// `line`.
    pub fn too_many(line: usize) -> Self {
        SyntaxError::over(line, Overrun::Options)
    }

    fn over(line: usize, limit: Overrun) -> Self {
        SyntaxError {
            over: Some(limit),
            ..SyntaxError::at(line, None, "")
        }
    }
}

/// Line numbers of byte offsets asked in increasing order, each counted on from the previous
/// one, so numbering every option of a file reads it once.
pub(crate) struct LineCounter<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    pub fn new(text: &'a str) -> Self {
        LineCounter {
            text,
            at: 0,
            line: 1,
        }
    }

    /// The line of `offset`, which is not before the previous one asked.
    pub fn of(&mut self, offset: usize) -> usize {
        self.line += self.text[self.at..offset].matches('\n').count();
        self.at = offset;
        self.line
    }
}

/// A reader's answer: the section's entries, or `None` when the section is not there.
pub(crate) type ReadResult = Result<Option<Vec<RawEntry>>, SyntaxError>;

/// What the format readers' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    /// A reader's entries for a config that reads and has the section: (key, value, line).
    pub fn entries_of(result: super::ReadResult) -> Vec<(String, String, Option<usize>)> {
        result
            .expect("it reads")
            .expect("the section is there")
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    /// One expected entry, on `line`.
    pub fn entry(key: &str, value: &str, line: usize) -> (String, String, Option<usize>) {
        (key.into(), value.into(), Some(line))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Ini,
    Json,
    Yaml,
    Xml,
}

impl Format {
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "ini" => Some(Format::Ini),
            "json" | "js" => Some(Format::Json),
            "yml" | "yaml" => Some(Format::Yaml),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Format::Ini => "ini",
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Xml => "XML",
        }
    }
}

/// A config name split into the file and the section it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigName {
    pub path: PathBuf,
    pub section: Option<String>,
}

impl ConfigName {
    /// `app.ini:prod` -> (`app.ini`, `prod`). The suffix counts as a section only when what is
    /// before the colon has a config extension, so paths that merely contain a colon still work.
    pub fn parse(name: &Path) -> ConfigName {
        let whole = ConfigName {
            path: name.to_path_buf(),
            section: None,
        };
        let Some(text) = name.to_str() else {
            return whole;
        };
        match text.rsplit_once(':') {
            Some((file, section)) if has_config_extension(file) && !section.contains('/') => {
                ConfigName {
                    path: PathBuf::from(file),
                    section: Some(section.to_string()),
                }
            }
            _ => whole,
        }
    }

    /// The section actually read (`uwsgi` unless the name picks one); this is `%x`.
    pub fn section_name(&self) -> &str {
        self.section.as_deref().unwrap_or(DEFAULT_SECTION)
    }

    /// `app.ini` or `app.ini:prod`, for messages and include chains.
    pub fn display(&self) -> String {
        match &self.section {
            Some(section) => format!("{}:{section}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

fn has_config_extension(file: &str) -> bool {
    file.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && CONFIG_EXTENSIONS.contains(&ext))
}

/// The text of a config file, once its name says it is in a format we read.
pub(crate) fn read_config(name: &ConfigName) -> Result<String, ConfigError> {
    let path = &name.path;
    Format::of(path).ok_or_else(|| ConfigError::UnknownFormat { path: path.clone() })?;
    super::file::read_text(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })
}

/// The raw entries of the requested section of `text`, in the format the name's extension
/// says (a config that came as text, from a monitor, has a name but no file).
pub(crate) fn parse_raw(name: &ConfigName, text: &str) -> Result<Vec<RawEntry>, ConfigError> {
    let path = &name.path;
    let format =
        Format::of(path).ok_or_else(|| ConfigError::UnknownFormat { path: path.clone() })?;
    let read = match format {
        Format::Ini => ini::read(text, name.section_name()),
        Format::Json => json::read(text, name.section_name()),
        Format::Yaml => yaml::read(text, name.section_name()),
        Format::Xml => xml::read(text, name.section.as_deref()),
    };
    match read {
        Ok(Some(entries)) => Ok(entries),
        Ok(None) => Err(ConfigError::MissingSection {
            path: path.clone(),
            section: name.section_name().to_string(),
        }),
        Err(SyntaxError {
            line,
            over: Some(limit),
            ..
        }) => Err(ConfigError::Limit {
            path: path.clone(),
            line,
            key: None,
            limit,
        }),
        Err(error) => Err(ConfigError::Syntax {
            path: path.clone(),
            line: error.line,
            column: error.column,
            format: format.label(),
            message: error.message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_suffix_is_split_off_only_after_a_config_extension() {
        let name = ConfigName::parse(Path::new("/etc/app.ini:prod"));
        assert_eq!(name.path, PathBuf::from("/etc/app.ini"));
        assert_eq!(name.section.as_deref(), Some("prod"));
        assert_eq!(name.section_name(), "prod");

        let name = ConfigName::parse(Path::new("/srv/a:b/app.ini"));
        assert_eq!(name.path, PathBuf::from("/srv/a:b/app.ini"));
        assert_eq!(name.section_name(), "uwsgi");
    }

    #[test]
    fn format_comes_from_the_extension() {
        assert_eq!(Format::of(Path::new("a.js")), Some(Format::Json));
        assert_eq!(Format::of(Path::new("a.yml")), Some(Format::Yaml));
        assert_eq!(Format::of(Path::new("a.skel")), None);
    }

    #[test]
    fn unknown_extension_and_missing_file_are_errors() {
        let err = read_config(&ConfigName::parse(Path::new("/nowhere/app.skel"))).unwrap_err();
        assert!(err.to_string().contains("unknown config format"), "{err}");
        let err = read_config(&ConfigName::parse(Path::new("/nowhere/app.ini"))).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read /nowhere/app.ini"),
            "{err}"
        );
    }
}
