//! Attach two throwaway network namespaces to a bridge network that lives
//! in a third ("host") namespace, print what a runtime would write into the
//! containers, check they reach each other, and undo it all.
//!
//! `sudo cargo run -p dunnage-network --example bridge`
//!
//! Every namespace is made here (`ip netns add dunnage-demo-*`) and deleted
//! at the end; nothing is created in the machine's own network namespace.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use dunnage_network::{NetworkSpec, Networks, etc, netns};

struct Ns(String);

impl Ns {
    fn new(name: &str) -> Result<Ns, Box<dyn std::error::Error>> {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()?
            .success();
        if !ok {
            return Err(format!("ip netns add {name} failed (are you root?)").into());
        }
        Ok(Ns(name.to_string()))
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pid = std::process::id();
    let host = Ns::new(&format!("dunnage-demo-host-{pid}"))?;
    let c1 = Ns::new(&format!("dunnage-demo-c1-{pid}"))?;
    let c2 = Ns::new(&format!("dunnage-demo-c2-{pid}"))?;
    let state = std::env::temp_dir().join(format!("dunnage-demo-{pid}"));

    let host_fd = netns::open(Path::new(&host.path()))?;
    let nets = Networks::open(&state, host_fd.as_fd())?;
    let mut spec = NetworkSpec::new("demo0");
    spec.subnet("10.211.0.0/24".parse()?);
    let net = nets.create(&spec)?;
    println!(
        "network {} on bridge {}: {} via {}",
        net.name, net.bridge, net.subnet, net.gateway
    );

    let c1_fd = netns::open(Path::new(&c1.path()))?;
    let c2_fd = netns::open(Path::new(&c2.path()))?;
    let a1 = nets.attach("demo0", "c1", c1_fd.as_fd(), &["8080:80".parse()?])?;
    let a2 = nets.attach("demo0", "c2", c2_fd.as_fd(), &[])?;
    for a in [&a1, &a2] {
        println!(
            "{}: {} {}/{} gw {} mac {} host end {} ports {:?}",
            a.container_id,
            a.interface,
            a.address,
            a.prefix_len,
            a.gateway,
            a.mac,
            a.host_veth,
            a.ports.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
    print!("c1's /etc/hosts:\n{}", etc::hosts(a1.address, &["c1"]));
    let host_resolv = etc::read_host_resolv_conf();
    print!(
        "c1's /etc/resolv.conf:\n{}",
        etc::resolv_conf(&host_resolv, false)
    );

    let ping = Command::new("nsenter")
        .arg(format!("--net={}", c2.path()))
        .args(["busybox", "ping", "-c1", "-W5", &a1.address.to_string()])
        .status()?;
    println!(
        "c2 -> c1 ping: {}",
        if ping.success() { "ok" } else { "failed" }
    );

    nets.detach("demo0", "c1")?;
    nets.detach("demo0", "c2")?;
    nets.remove("demo0")?;
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}
