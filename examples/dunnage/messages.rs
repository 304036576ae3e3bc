//! Docker's words for a container verb's errors (20.10's CLI and daemon):
//! which verbs say `Error: No such container: X` (those whose CLI looks
//! the container up first) and which `Error response from daemon: ...`,
//! and how a container in the wrong state is refused by each verb.

use dunnage::container::{Error, Status};

use crate::verbs::Fail;

/// The verbs whose docker CLI inspects the container before acting, so
/// that a missing one is the CLI's own `Error: No such container: X`.
const CLIENT_LOOKUP: [&str; 5] = ["rm", "logs", "port", "attach", "exec"];

/// Error `e` of `verb` on the container the user named `key`, worded as
/// docker words it; exit status 1.
pub fn verb_error(verb: &str, key: &str, e: Error) -> Fail {
    let daemon = |m: String| Fail {
        code: 1,
        msg: format!("Error response from daemon: {m}"),
    };
    match e {
        Error::UnknownContainer(_) if CLIENT_LOOKUP.contains(&verb) => Fail {
            code: 1,
            msg: format!("Error: No such container: {key}"),
        },
        Error::UnknownContainer(_) if verb == "kill" => daemon(format!(
            "Cannot kill container: {key}: No such container: {key}"
        )),
        Error::NotRunning(id) if verb == "kill" => daemon(format!(
            "Cannot kill container: {key}: Container {id} is not running"
        )),
        Error::NotRunning(id) if verb == "unpause" => {
            daemon(format!("Container {id} is not paused"))
        }
        // docker names a paused container refusing an exec as given.
        Error::WrongState {
            op: "exec in",
            status: Status::Paused,
            ..
        } => daemon(format!(
            "Container {key} is paused, unpause the container before exec"
        )),
        Error::WrongState { op, id, status } => daemon(wrong_state(op, &id, status)),
        e => daemon(e.to_string()),
    }
}

/// Docker's refusal of `op` on container `id` in `status`.
fn wrong_state(op: &str, id: &str, status: Status) -> String {
    match (op, status) {
        ("remove", Status::Paused) => format!(
            "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"
        ),
        ("remove", _) => format!(
            "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
        ),
        ("pause", Status::Paused) => format!("Container {id} is already paused"),
        ("pause", _) => format!("Container {id} is not running"),
        ("unpause" | "resume", _) => format!("Container {id} is not paused"),
        ("start", Status::Paused) => {
            "cannot start a paused container, try unpause instead".to_string()
        }
        (op, status) => format!("cannot {op} container {id}: it is {status}"),
    }
}

/// runc's words for a program it cannot start: `exec: "/x": stat /x: no
/// such file or directory` for a path, `exec: "x": executable file not
/// found in $PATH` for a name, `exec: "/x": permission denied`.
pub fn exec_words(e: &Error) -> String {
    match e {
        Error::CommandNotFound(p) if p.contains('/') => {
            format!("exec: {p:?}: stat {p}: no such file or directory")
        }
        e => e.to_string(),
    }
}

/// A flag that docker's CLI refuses (exit 125), with its pointer to help.
pub fn flag_error(verb: &str, msg: &str) -> Fail {
    Fail {
        code: 125,
        msg: format!("{msg}\nSee 'dunnage {verb} --help'."),
    }
}

/// Each verb's usage line and summary, as docker's CLI prints them
/// after an argument count it refuses.
const USAGE: [(&str, &str, &str); 16] = [
    (
        "restart",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        "Restart one or more containers",
    ),
    (
        "start",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        "Start one or more stopped containers",
    ),
    (
        "stop",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        "Stop one or more running containers",
    ),
    (
        "kill",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        "Kill one or more running containers",
    ),
    (
        "rm",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        "Remove one or more containers",
    ),
    (
        "pause",
        "CONTAINER [CONTAINER...]",
        "Pause all processes within one or more containers",
    ),
    (
        "unpause",
        "CONTAINER [CONTAINER...]",
        "Unpause all processes within one or more containers",
    ),
    (
        "wait",
        "CONTAINER [CONTAINER...]",
        "Block until one or more containers stop, then print their exit codes",
    ),
    (
        "logs",
        "[OPTIONS] CONTAINER",
        "Fetch the logs of a container",
    ),
    (
        "top",
        "CONTAINER [ps OPTIONS]",
        "Display the running processes of a container",
    ),
    (
        "exec",
        "[OPTIONS] CONTAINER COMMAND [ARG...]",
        "Run a command in a running container",
    ),
    (
        "attach",
        "[OPTIONS] CONTAINER",
        "Attach local standard input, output, and error streams to a running container",
    ),
    (
        "export",
        "[OPTIONS] CONTAINER",
        "Export a container's filesystem as a tar archive",
    ),
    (
        "commit",
        "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        "Create a new image from a container's changes",
    ),
    (
        "update",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        "Update configuration of one or more containers",
    ),
    (
        "port",
        "CONTAINER [PRIVATE_PORT[/PROTO]]",
        "List port mappings or a specific mapping for the container",
    ),
];

/// Too few or too many arguments: docker's CLI says so, points to help,
/// shows the verb's usage and exits 1.
pub fn arg_count(verb: &str, msg: &str) -> Fail {
    let mut msg = format!("{msg}.\nSee 'dunnage {verb} --help'.");
    if let Some((_, args, what)) = USAGE.iter().find(|(v, _, _)| *v == verb) {
        msg.push_str(&format!("\n\nUsage:  dunnage {verb} {args}\n\n{what}"));
    }
    Fail { code: 1, msg }
}
