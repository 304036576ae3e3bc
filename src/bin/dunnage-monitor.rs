//! `dunnage-monitor`: the monitor of detached containers, for host
//! programs that do not run it themselves (see `dunnage::container::monitor`).
//! Started by the library as `dunnage-monitor --dunnage-monitor ROOT`.

fn main() {
    dunnage::container::monitor::run_if_monitor();
    eprintln!(
        "dunnage-monitor: started by the dunnage library as `{} ROOT` (the container's configuration on stdin)",
        dunnage::container::monitor::MONITOR_ARG
    );
    std::process::exit(2);
}
