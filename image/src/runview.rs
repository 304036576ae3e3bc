//! How a container of an image runs: the image config's defaults merged
//! with the caller's overrides by dockerd's rules (`docker run`/`docker
//! create`), as one value.
//!
//! - Entrypoint and command: a user entrypoint replaces the image's and
//!   drops the image's Cmd (only the user's command follows it); an empty
//!   user entrypoint (`--entrypoint ""`) resets it to none. Without a user
//!   entrypoint, a non-empty user command replaces the image's Cmd and the
//!   image's Entrypoint stays. The argv is entrypoint then command.
//! - Environment: the user's variables, then each image variable whose key
//!   the user did not set (the order `docker inspect` shows).
//! - WorkingDir and User: the user's when given, else the image's.
//! - StopSignal: the user's, else the image's, else `SIGTERM`.

use crate::config::ImageConfig;

/// The caller's side of a run: what `docker run` flags set. `None` and
/// empty fields leave the image's value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOverrides {
    /// `--entrypoint`: `Some(vec![])` or `Some(vec![""])` resets it.
    pub entrypoint: Option<Vec<String>>,
    /// The command after the image name.
    pub cmd: Option<Vec<String>>,
    /// `-e KEY=value` (or `KEY` alone), in order.
    pub env: Vec<String>,
    /// `-w`.
    pub working_dir: Option<String>,
    /// `-u user[:group]`.
    pub user: Option<String>,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
}

/// The merged run view of an image and [`RunOverrides`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunView {
    /// The effective entrypoint (empty: none).
    pub entrypoint: Vec<String>,
    /// The effective command (arguments after the entrypoint).
    pub cmd: Vec<String>,
    /// `KEY=value` entries, user's first.
    pub env: Vec<String>,
    /// The working directory; empty means `/`.
    pub working_dir: String,
    /// `user[:group]`; empty means root.
    pub user: String,
    /// The signal that stops the container (`SIGTERM` by default).
    pub stop_signal: String,
}

/// The default stop signal.
pub const DEFAULT_STOP_SIGNAL: &str = "SIGTERM";

/// The key of a `KEY=value` (or `KEY`) environment entry.
fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

impl RunView {
    /// Merge the image's run config (`config.config`, absent fields as
    /// empty) with `user`.
    pub fn new(image: &ImageConfig, user: &RunOverrides) -> RunView {
        let defaults = image.file().config.clone().unwrap_or_default();
        let (entrypoint, cmd) = match &user.entrypoint {
            Some(ep) => (ep.clone(), user.cmd.clone().unwrap_or_default()),
            None => {
                let cmd = match &user.cmd {
                    Some(c) if !c.is_empty() => c.clone(),
                    _ => defaults.cmd.clone().unwrap_or_default(),
                };
                (defaults.entrypoint.clone().unwrap_or_default(), cmd)
            }
        };
        // `--entrypoint ""` arrives as one empty word: no entrypoint.
        let entrypoint = if entrypoint.len() == 1 && entrypoint[0].is_empty() {
            Vec::new()
        } else {
            entrypoint
        };
        let mut env = user.env.clone();
        for entry in defaults.env.iter().flatten() {
            if !user.env.iter().any(|u| env_key(u) == env_key(entry)) {
                env.push(entry.clone());
            }
        }
        let pick = |mine: &Option<String>, theirs: &Option<String>| {
            mine.clone()
                .filter(|s| !s.is_empty())
                .or_else(|| theirs.clone())
                .unwrap_or_default()
        };
        let stop_signal = pick(&user.stop_signal, &defaults.stop_signal);
        RunView {
            entrypoint,
            cmd,
            env,
            working_dir: pick(&user.working_dir, &defaults.working_dir),
            user: pick(&user.user, &defaults.user),
            stop_signal: if stop_signal.is_empty() {
                DEFAULT_STOP_SIGNAL.to_string()
            } else {
                stop_signal
            },
        }
    }

    /// The program and its arguments: entrypoint then command. Empty when
    /// neither the image nor the user gives one (docker: "no command
    /// specified").
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The value of `key` in the merged environment (`None` when unset;
    /// a bare `KEY` entry has no value here).
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|e| env_key(e) == key)
            .and_then(|e| e.split_once('=').map(|(_, v)| v))
    }
}

impl ImageConfig {
    /// The run view of this image under `user`'s overrides (see
    /// [`RunView`]).
    pub fn run_view(&self, user: &RunOverrides) -> RunView {
        RunView::new(self, user)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn image(run: &str) -> ImageConfig {
        let raw = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{run},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        ImageConfig::from_bytes(raw.into_bytes()).unwrap()
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn full() -> ImageConfig {
        image(
            r#"{"Entrypoint":["/bin/echo","ep"],"Cmd":["a","b"],"Env":["A=1","B=img"],"WorkingDir":"/tmp","User":"1000","StopSignal":"SIGUSR1"}"#,
        )
    }

    #[test]
    fn image_defaults_alone() {
        let v = full().run_view(&RunOverrides::default());
        assert_eq!(v.argv(), words(&["/bin/echo", "ep", "a", "b"]));
        assert_eq!(v.env, words(&["A=1", "B=img"]));
        assert_eq!(v.working_dir, "/tmp");
        assert_eq!(v.user, "1000");
        assert_eq!(v.stop_signal, "SIGUSR1");
    }

    #[test]
    fn a_user_cmd_replaces_cmd_and_keeps_the_entrypoint() {
        let v = full().run_view(&RunOverrides {
            cmd: Some(words(&["x"])),
            ..RunOverrides::default()
        });
        assert_eq!(v.argv(), words(&["/bin/echo", "ep", "x"]));
        // An empty user command is no command: the image's stays.
        let v = full().run_view(&RunOverrides {
            cmd: Some(Vec::new()),
            ..RunOverrides::default()
        });
        assert_eq!(v.argv(), words(&["/bin/echo", "ep", "a", "b"]));
    }

    #[test]
    fn a_user_entrypoint_resets_cmd() {
        let v = full().run_view(&RunOverrides {
            entrypoint: Some(words(&["/bin/true"])),
            ..RunOverrides::default()
        });
        assert_eq!(v.argv(), words(&["/bin/true"]));
        let v = full().run_view(&RunOverrides {
            entrypoint: Some(words(&["/bin/sh"])),
            cmd: Some(words(&["-c", "x"])),
            ..RunOverrides::default()
        });
        assert_eq!(v.argv(), words(&["/bin/sh", "-c", "x"]));
        // `--entrypoint ""`: none at all, the user's command runs.
        let v = full().run_view(&RunOverrides {
            entrypoint: Some(words(&[""])),
            cmd: Some(words(&["ls"])),
            ..RunOverrides::default()
        });
        assert!(v.entrypoint.is_empty());
        assert_eq!(v.argv(), words(&["ls"]));
    }

    #[test]
    fn user_env_comes_first_and_overrides_by_key() {
        let v = full().run_view(&RunOverrides {
            env: words(&["B=user", "C=3", "A"]),
            ..RunOverrides::default()
        });
        assert_eq!(v.env, words(&["B=user", "C=3", "A"]));
        assert_eq!(v.env_var("B"), Some("user"));
        assert_eq!(v.env_var("A"), None);
        assert_eq!(v.env_var("Z"), None);
    }

    #[test]
    fn user_settings_win_and_stop_signal_defaults_to_sigterm() {
        let v = full().run_view(&RunOverrides {
            working_dir: Some("/w".into()),
            user: Some("nobody".into()),
            stop_signal: Some("SIGKILL".into()),
            ..RunOverrides::default()
        });
        assert_eq!((v.working_dir.as_str(), v.user.as_str()), ("/w", "nobody"));
        assert_eq!(v.stop_signal, "SIGKILL");
        let bare = image("{}").run_view(&RunOverrides::default());
        assert_eq!(bare.stop_signal, DEFAULT_STOP_SIGNAL);
        assert!(bare.argv().is_empty());
        assert_eq!((bare.working_dir.as_str(), bare.user.as_str()), ("", ""));
        // An image without a `config` object at all.
        let raw =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let none = ImageConfig::from_bytes(raw.to_vec()).unwrap();
        assert_eq!(none.run_view(&RunOverrides::default()), bare);
    }
}
