//! `inspect` of a container: the parts of `docker inspect`'s object a
//! user scripts against (Id, Created, Path, Args, State with Pid,
//! ExitCode and OOMKilled, Image, Name, GraphDriver, Config, HostConfig),
//! with docker's key names.

use std::path::Path;

use dunnage::container::{ContainerHandle, Status};
use serde_json::{Value, json};

/// The overlay2 directories of the container's layer, as docker's
/// GraphDriver.Data shows them (LowerDir top first).
fn graph_driver(root: &Path, h: &ContainerHandle) -> Value {
    let layers = h_layers(root, h);
    match layers {
        Some((mount_id, lower)) => {
            let dir = root.join("overlay2").join(&mount_id);
            json!({
                "Data": {
                    "LowerDir": lower,
                    "MergedDir": dir.join("merged"),
                    "UpperDir": dir.join("diff"),
                    "WorkDir": dir.join("work"),
                },
                "Name": "overlay2"
            })
        }
        None => json!({ "Data": null, "Name": "" }),
    }
}

/// The container layer's mount ID and its lower directories.
fn h_layers(root: &Path, h: &ContainerHandle) -> Option<(String, String)> {
    let rw = dunnage::image::ImageStore::open_read_only(root)
        .ok()?
        .layers()
        .get_rw(h.id())
        .ok()?;
    let lower_file = root.join("overlay2").join(&rw.mount_id).join("lower");
    let lower = std::fs::read_to_string(lower_file).unwrap_or_default();
    let dirs: Vec<String> = lower
        .trim()
        .split(':')
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let link = root.join("overlay2").join(l);
            let target = std::fs::read_link(&link).ok()?;
            let abs = link.parent()?.join(target);
            Some(
                std::fs::canonicalize(&abs)
                    .unwrap_or(abs)
                    .display()
                    .to_string(),
            )
        })
        .collect();
    Some((rw.mount_id, dirs.join(":")))
}

/// docker's HostConfig.NetworkMode: `none`, `host`, the network's name,
/// or `container:` and the namespace joined.
fn network_mode(n: &dunnage::container::Network) -> String {
    match n {
        dunnage::container::Network::None => "none".into(),
        dunnage::container::Network::Host => "host".into(),
        // The default network is docker's `bridge`.
        dunnage::container::Network::Bridge { name, .. }
            if name == dunnage::container::network::DEFAULT_NETWORK =>
        {
            "bridge".into()
        }
        dunnage::container::Network::Bridge { name, .. } => name.clone(),
        dunnage::container::Network::Join(path) => format!("container:{}", path.display()),
        _ => String::new(),
    }
}

/// The container's inspect object.
pub fn container(root: &Path, h: &ContainerHandle) -> Value {
    let spec = h.spec();
    let st = h.state().unwrap_or_default();
    let status = st.live_status();
    let running = matches!(status, Status::Running | Status::Paused);
    let mounts: Vec<Value> = spec
        .mounts
        .iter()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect();
    json!({
        "Id": spec.id,
        "Created": spec.created,
        "Path": spec.argv.first().cloned().unwrap_or_default(),
        "Args": spec.argv.get(1..).unwrap_or_default(),
        "State": {
            "Status": status.to_string(),
            "Running": running,
            "Paused": status == Status::Paused,
            "Restarting": false,
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": if running { st.pid } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "Error": "",
            "StartedAt": st.started_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "FinishedAt": st.finished_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        },
        "Image": spec.image.clone().unwrap_or_default(),
        "LogPath": h.log_path(),
        "Name": format!("/{}", spec.name),
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "GraphDriver": graph_driver(root, h),
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.hostname,
            "Domainname": "",
            "User": spec.user,
            "Tty": spec.tty,
            "OpenStdin": spec.open_stdin,
            "StdinOnce": false,
            "Env": spec.config.as_ref().map_or(&spec.env, |c| &c.env),
            "Cmd": spec.argv,
            "Image": spec.image_name.clone().or_else(|| spec.image.clone()).unwrap_or_default(),
            "WorkingDir": spec.config.as_ref().map_or(&spec.cwd, |c| &c.working_dir),
            "Labels": spec.labels,
            "StopSignal": spec.stop_signal,
        },
        "NetworkSettings": crate::network::settings(h),
        "HostConfig": {
            "LogConfig": { "Type": "json-file", "Config": {} },
            "NetworkMode": network_mode(&spec.network),
            "PortBindings": crate::network::port_bindings(&spec.network),
            "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
            "CapDrop": null,
            "MaskedPaths": if spec.privileged { Value::Null } else { json!(spec.masked_paths) },
            "ReadonlyPaths": if spec.privileged { Value::Null } else { json!(spec.readonly_paths) },
            "Privileged": spec.privileged,
            "ReadonlyRootfs": spec.readonly_rootfs,
            "CapAdd": null,
            "Memory": spec.resources.memory.unwrap_or(0),
            "MemorySwap": spec.resources.memory_swap.unwrap_or(0),
            "NanoCpus": spec.resources.cpu_quota.map_or(0, |q| q * 10_000),
            "CpuShares": spec.resources.cpu_shares.unwrap_or(0),
            "CpusetCpus": spec.resources.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": spec.resources.pids_limit,
            "Sysctls": spec.sysctls.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "CgroupParent": spec.cgroup,
        },
    })
}
