//! The expansion passes over one value, in uWSGI's order: magic variables, `$(ENV)`,
//! `@(file)`, `%(placeholder)`.

use super::{bad_option, limit_error, FileScope, Loader};
use crate::config::expand::{self, ExpandError};
use crate::config::magic::MagicScope;
use crate::config::normalize_key;
use crate::config::source::RawEntry;
use crate::config::ConfigError;

impl Loader {
    /// Magic variables, then `$(...)`, `@(...)`, `%(...)`.
    /// Each pass is bounded by the limit of one value (see `limits`).
    pub(super) fn expand(
        &mut self,
        raw: &RawEntry,
        scope: &FileScope,
    ) -> Result<String, ConfigError> {
        let error = |error| match error {
            ExpandError::Failed(message) => bad_option(scope, raw, message),
            ExpandError::Over(limit) => limit_error(scope, raw, limit),
        };
        let magic = MagicScope {
            startup: &self.startup,
            file: scope.facts,
            vassal: &self.vassal,
        };
        let text = magic
            .expand(&raw.value)
            .map_err(|limit| limit_error(scope, raw, limit))?;
        let text = match &self.environment {
            Some(env) => expand::environment(&text, |name| {
                env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            }),
            None => expand::environment(&text, |name| std::env::var(name).ok()),
        }
        .map_err(error)?;
        let text =
            expand::file_contents(&text, scope.facts.dir(), &mut self.budget).map_err(error)?;
        expand::placeholders(&text, |name| {
            self.placeholders.get(&normalize_key(name)).cloned()
        })
        .map_err(error)
    }
}
