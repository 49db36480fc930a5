//! Placeholder until the seccomp module lands (being written in parallel).
use nix::errno::Errno;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Default,
    Strict,
    Unconfined,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown seccomp profile {0:?}")]
pub struct UnknownProfile(pub String);

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Profile::Default),
            "strict" => Ok(Profile::Strict),
            "none" | "unconfined" => Ok(Profile::Unconfined),
            o => Err(UnknownProfile(o.into())),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Debug, Clone)]
pub struct Filter;

impl Filter {
    pub fn install_in_child(&self) -> Result<(), Errno> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("seccomp")]
pub struct SeccompError;

pub fn build(_p: Profile) -> Result<Option<Filter>, SeccompError> {
    Ok(None)
}
