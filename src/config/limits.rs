//! The bounds on what one config may cost to read. Configs are hostile input in tyrant mode
//! (and reach the emperor from monitors): a small file must not buy a deep recursion, gigabytes
//! of expansion or thousands of file reads. A real uWSGI config nests 3 or 4 levels deep, has
//! values of a few hundred bytes and includes a handful of files; these limits are far above
//! that and far below what would hurt the process that reads it.

/// Nesting of elements (XML), arrays and objects (JSON), sequences and mappings (YAML).
pub const MAX_DEPTH: usize = 64;

/// One value after expansion (magic variables, `$()`, `@()`, `%()`).
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// All keys and values of one config after expansion, sets and includes counted.
pub const MAX_EXPANDED_BYTES: usize = 4 << 20;

/// Files a config reads besides itself: `include`s, `vassals-include`s and `@(file)`s.
pub const MAX_INCLUDED_FILES: usize = 64;

/// Bytes of those files together.
pub const MAX_INCLUDED_BYTES: usize = 8 << 20;

/// Options of one config (sets and includes counted), and elements (XML), values (JSON,
/// YAML) or options (ini) of one file: each costs a hundred bytes or so however short it is.
pub const MAX_OPTIONS: usize = 64 << 10;

/// An `include` inside an included file inside ...: each level is a recursion of the loader.
pub const MAX_INCLUDE_NESTING: usize = 16;

/// Which limit a config went over; the message says it with its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    Depth,
    Value,
    Expanded,
    Files,
    FileBytes,
    IncludeNesting,
    Options,
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Overrun::Depth => write!(f, "nesting deeper than {MAX_DEPTH} levels"),
            Overrun::Value => write!(
                f,
                "expands to more than {MAX_VALUE_BYTES} bytes (limit of one value)"
            ),
            Overrun::Expanded => write!(
                f,
                "the config expands to more than {MAX_EXPANDED_BYTES} bytes (limit of one config)"
            ),
            Overrun::Files => write!(
                f,
                "reads more than {MAX_INCLUDED_FILES} files (limit of includes and @(file) of one config)"
            ),
            Overrun::FileBytes => write!(
                f,
                "reads more than {MAX_INCLUDED_BYTES} bytes of files (limit of includes and @(file) of one config)"
            ),
            Overrun::Options => write!(f, "more than {MAX_OPTIONS} options (limit of one config)"),
            Overrun::IncludeNesting => {
                write!(f, "includes nested deeper than {MAX_INCLUDE_NESTING} levels")
            }
        }
    }
}

/// What one config has read and expanded so far. Each step asks before it keeps what it
/// read or built, so the budget bounds memory and time, not just the result.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    files: usize,
    file_bytes: usize,
    expanded: usize,
    options: usize,
}

impl Budget {
    /// One more file to read (asked before opening it).
    pub fn open_file(&mut self) -> Result<(), Overrun> {
        self.files += 1;
        (self.files <= MAX_INCLUDED_FILES)
            .then_some(())
            .ok_or(Overrun::Files)
    }

    /// `bytes` more read from files (asked before they are parsed or inserted).
    pub fn read(&mut self, bytes: usize) -> Result<(), Overrun> {
        self.file_bytes = self.file_bytes.saturating_add(bytes);
        (self.file_bytes <= MAX_INCLUDED_BYTES)
            .then_some(())
            .ok_or(Overrun::FileBytes)
    }

    /// One more expanded option of `bytes` (key and value; asked before it is stored).
    pub fn keep(&mut self, bytes: usize) -> Result<(), Overrun> {
        self.options += 1;
        if self.options > MAX_OPTIONS {
            return Err(Overrun::Options);
        }
        self.expanded = self.expanded.saturating_add(bytes);
        (self.expanded <= MAX_EXPANDED_BYTES)
            .then_some(())
            .ok_or(Overrun::Expanded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_counted_up_to_the_limit() {
        let mut budget = Budget::default();
        for _ in 0..MAX_INCLUDED_FILES {
            budget.open_file().unwrap();
        }
        assert_eq!(budget.open_file(), Err(Overrun::Files));
    }

    #[test]
    fn file_bytes_and_expanded_bytes_are_counted_up_to_the_limit() {
        let mut budget = Budget::default();
        budget.read(MAX_INCLUDED_BYTES - 1).unwrap();
        budget.read(1).unwrap();
        assert_eq!(budget.read(1), Err(Overrun::FileBytes));
        budget.keep(MAX_EXPANDED_BYTES).unwrap();
        assert_eq!(budget.keep(1), Err(Overrun::Expanded));
    }

    #[test]
    fn options_are_counted_up_to_the_limit() {
        let mut budget = Budget::default();
        for _ in 0..MAX_OPTIONS {
            budget.keep(0).unwrap();
        }
        assert_eq!(budget.keep(0), Err(Overrun::Options));
    }

    #[test]
    fn messages_name_the_limit_with_its_number() {
        assert_eq!(Overrun::Depth.to_string(), "nesting deeper than 64 levels");
        assert_eq!(
            Overrun::Value.to_string(),
            "expands to more than 65536 bytes (limit of one value)"
        );
    }
}
