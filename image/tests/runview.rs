//! The merged run view (`RunView`) against a private dockerd: for the same
//! image and the same `docker create` flags, the argv (`.Path` + `.Args`),
//! environment, working directory, user and stop signal docker records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::run;
use dunnage_image::{ImageStore, LoadOptions, RunOverrides};
use dunnage_testsupport::{Dockerd, TempDir, require_command, require_root};

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

#[test]
fn run_views_match_docker_create() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("image-runview").unwrap();
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("f"), b"x").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\n\
         COPY f /f\n\
         ENTRYPOINT [\"/bin/echo\", \"ep\"]\n\
         CMD [\"a\", \"b\"]\n\
         ENV A=1 B=img\n\
         WORKDIR /tmp\n\
         USER 1000\n\
         STOPSIGNAL SIGUSR1\n",
    )
    .unwrap();
    let d = Dockerd::start("runview").unwrap();
    let image = "dunnage-test/runview:1";
    run(d
        .docker()
        .args(["build", "--network=none", "-q", "-t", image])
        .arg(&ctx));
    // (docker create flags, our overrides)
    let cases: Vec<(Vec<&str>, RunOverrides)> = vec![
        (vec![], RunOverrides::default()),
        (
            vec!["--", image, "x", "y"],
            RunOverrides {
                cmd: Some(words(&["x", "y"])),
                ..RunOverrides::default()
            },
        ),
        (
            vec!["--entrypoint", "/bin/true"],
            RunOverrides {
                entrypoint: Some(words(&["/bin/true"])),
                ..RunOverrides::default()
            },
        ),
        (
            vec!["--entrypoint", "", "--", image, "ls", "-l"],
            RunOverrides {
                entrypoint: Some(words(&[""])),
                cmd: Some(words(&["ls", "-l"])),
                ..RunOverrides::default()
            },
        ),
        (
            vec![
                "-e",
                "B=user",
                "-e",
                "C=3",
                "-w",
                "/w",
                "-u",
                "nobody",
                "--stop-signal",
                "SIGKILL",
            ],
            RunOverrides {
                env: words(&["B=user", "C=3"]),
                working_dir: Some("/w".into()),
                user: Some("nobody".into()),
                stop_signal: Some("SIGKILL".into()),
                ..RunOverrides::default()
            },
        ),
    ];
    let format = "{{json .Path}}\n{{json .Args}}\n{{json .Config.Env}}\n{{json .Config.WorkingDir}}\n{{json .Config.User}}\n{{json .Config.StopSignal}}";
    let mut theirs = Vec::new();
    for (flags, _) in &cases {
        let mut args = vec!["create"];
        args.extend(flags.iter().copied());
        if !flags.contains(&"--") {
            args.push(image);
        }
        let id = run(d.docker().args(&args)).trim().to_string();
        let out = run(d.docker().args(["inspect", "-f", format, &id]));
        let v: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        theirs.push(v);
    }
    let saved = dir.join("saved.tar");
    run(d.docker().args(["save", "-o"]).arg(&saved).arg(image));
    drop(d);

    let store = ImageStore::open(&dir.join("root")).unwrap();
    let id = store.load(&saved, LoadOptions::default()).unwrap()[0]
        .id
        .clone();
    let config = store.config(&id).unwrap();
    for ((flags, overrides), docker) in cases.iter().zip(&theirs) {
        let view = config.run_view(overrides);
        let mut argv = vec![docker[0].as_str().unwrap().to_string()];
        argv.extend(
            docker[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
        assert_eq!(view.argv(), argv, "argv for {flags:?}");
        // dockerd keeps the image's entries in order after the user's, but
        // the user's own `-e` entries come in no fixed order (seen both
        // ways on one dockerd): compare them as a set, the rest in order.
        let env: Vec<String> = serde_json::from_value(docker[2].clone()).unwrap();
        let users = overrides.env.len();
        let set = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        assert_eq!(
            set(&view.env[..users]),
            set(&env[..users]),
            "env for {flags:?}"
        );
        assert_eq!(view.env[users..], env[users..], "env for {flags:?}");
        assert_eq!(view.working_dir, docker[3].as_str().unwrap(), "{flags:?}");
        assert_eq!(view.user, docker[4].as_str().unwrap(), "{flags:?}");
        let signal = docker[5].as_str().unwrap_or("");
        let signal = if signal.is_empty() { "SIGTERM" } else { signal };
        assert_eq!(view.stop_signal, signal, "{flags:?}");
    }
}
