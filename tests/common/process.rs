//! The project's binaries run as separate processes (a function under a Runtime API
//! stand-in, the local event source mapping), each logging to a file; stopped on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `exe` with only `env` in its environment; `label` names its log file.
    pub fn start(exe: &str, label: &str, env: &[(&'static str, String)], args: &[&str]) -> Process {
        let log = std::env::temp_dir().join(format!("smsreg-{label}-{}.log", std::process::id()));
        // One open file for both streams: they share its offset, so neither overwrites
        // the other's lines (metrics go to stdout, logs to stderr).
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(exe)
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{exe} starts: {e}"));
        Process { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
