//! A throwaway RabbitMQ broker for one test: its own node name, AMQP port, Erlang port mapper
//! (epmd on a port of its own, killed at the end), database and logs in a temp dir, run as the
//! `rabbitmq` user when the test is root. Nothing of a system broker is touched.

#![allow(dead_code)]

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Debian's python3, where apt puts python3-pika (the publisher the seed's examples use).
pub const PYTHON: &str = "/usr/bin/python3";

pub struct Broker {
    pub port: u16,
    epmd_port: u16,
    dir: tempfile::TempDir,
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl Broker {
    /// A running broker, or None (printed why) when rabbitmq-server or python3-pika is not
    /// installed. Under `CI=true` that fails the test instead: tests/run-all.sh installs them.
    pub fn start(test: &str) -> Option<Broker> {
        let pika = Command::new(PYTHON)
            .args(["-c", "import pika"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let found = Path::new(SERVER).exists() && pika;
        if !super::have(test, found, "rabbitmq-server or python3-pika") {
            return None;
        }
        let (dir, user) = super::server_home("rabbitmq");
        let mut broker = Broker {
            port: super::free_port(),
            epmd_port: super::free_port(),
            dir,
            user,
            child: None,
        };
        broker.restart();
        Some(broker)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Start the broker (again) with the same node and port; wait until AMQP is served.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let log = std::fs::File::create(self.path("server.out")).unwrap();
        let mut command = Command::new(SERVER);
        command
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", self.dir.path())
            .env(
                "RABBITMQ_NODENAME",
                format!("emperor-test-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", super::free_port().to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.path("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.path("log"))
            .env("RABBITMQ_PID_FILE", self.path("beam.pid"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                self.path("enabled_plugins"),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        self.child = Some(command.spawn().expect("start rabbitmq-server"));
        let start = Instant::now();
        while !self.answers() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "rabbitmq-server did not serve AMQP within 60 s:\n{}",
                std::fs::read_to_string(self.path("server.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the broker accepts an AMQP connection (a real handshake, not just a port).
    fn answers(&self) -> bool {
        self.python(
            "import pika, sys\npika.BlockingConnection(pika.URLParameters(sys.argv[1])).close()",
            &[&self.url()],
        )
    }

    /// Graceful stop (SIGTERM to the Erlang VM), waiting for the server to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let beam = std::fs::read_to_string(self.path("beam.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        match beam {
            Some(pid) => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            None => {
                let _ = child.kill();
            }
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(self.path("beam.pid"));
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2F", self.port)
    }

    fn python(&self, script: &str, args: &[&str]) -> bool {
        Command::new(PYTHON)
            .args(["-c", script])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Publish one message on the `uwsgi.emperor` fanout exchange, as the seed's pika example.
    pub fn publish(&self, routing_key: &str, body: &str) {
        self.publish_all(&[(routing_key, body)]);
    }

    /// Publish messages (routing key, body) in order, over one connection.
    pub fn publish_all(&self, messages: &[(&str, &str)]) {
        use std::io::Write;
        let script = "import json, pika, sys\n\
            c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))\n\
            ch = c.channel()\n\
            ch.exchange_declare(exchange='uwsgi.emperor', exchange_type='fanout')\n\
            for key, body in json.load(sys.stdin):\n    \
                ch.basic_publish(exchange='uwsgi.emperor', routing_key=key, body=body)\n\
            c.close()\n";
        let mut child = Command::new(PYTHON)
            .args(["-c", script, &self.url()])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let json = serde_json::to_string(messages).unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(json.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "publishing failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        // The port mapper the node started is ours alone (its own port): end it too.
        let _ = Command::new("epmd")
            .args(["-port", &self.epmd_port.to_string(), "-kill"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
