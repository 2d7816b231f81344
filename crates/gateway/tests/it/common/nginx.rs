//! Debian's nginx as a real reverse proxy in front of the gateway, the way
//! an SSO deployment configures it (interop/nginx/install.sh installs it).
//!
//! Each test starts its own nginx as an ordinary foreground process
//! (`nginx -c <conf> -p <prefix> -e <log> -g 'daemon off;'`) with a
//! temporary configuration: every path (pid, logs, temp files) is in a
//! temporary directory, every server listens on a free loopback port, and the
//! process is killed when the value is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One nginx `server`: where it forwards to and which user it vouches for.
pub struct Site {
    pub upstream: SocketAddr,
    /// `X-Forwarded-User` (and `X-Forwarded-Email`) set by the proxy, as an
    /// SSO proxy does after authenticating; `None` sends no identity.
    pub user: Option<String>,
}

pub struct Nginx {
    /// One address per [`Site`], in order.
    pub addrs: Vec<SocketAddr>,
    child: Child,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
}

fn server_block(port: u16, site: &Site, bind_from: &str) -> String {
    let identity = match &site.user {
        Some(user) => format!(
            "            proxy_set_header X-Forwarded-User \"{user}\";\n            \
             proxy_set_header X-Forwarded-Email \"{user}@example.com\";\n"
        ),
        None => String::new(),
    };
    format!(
        r#"    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{upstream};
            proxy_bind {bind_from};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
{identity}            proxy_read_timeout 300s;
        }}
    }}
"#,
        upstream = site.upstream
    )
}

impl Nginx {
    /// Start nginx with one server per site, connecting to the gateway from
    /// `bind_from` (a loopback address listed in `gateway.trustedProxies`).
    pub fn start(sites: &[Site], bind_from: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("nginx temp dir");
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let ports: Vec<u16> = sites.iter().map(|_| free_port()).collect();
        let servers: String = sites.iter().zip(&ports).map(|(s, p)| server_block(*p, s, bind_from)).collect();
        let conf = format!(
            r#"pid nginx.pid;
error_log error.log info;
master_process off;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
{servers}}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let prefix = format!("{}/", dir.path().display());
        let child = Command::new(binary())
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&prefix)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-g")
            .arg("daemon off;")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nginx ({e}): run interop/nginx/install.sh"));
        let addrs: Vec<SocketAddr> = ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
        let mut nginx = Nginx { addrs, child, dir };
        nginx.wait_ready();
        nginx
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}) at start:\n{}", self.log());
            }
            if self.addrs.iter().all(|a| std::net::TcpStream::connect(a).is_ok()) {
                return;
            }
            assert!(Instant::now() < deadline, "nginx did not listen in time:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// nginx's error log (start-up problems, upstream errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn url(&self, site: usize) -> String {
        format!("ws://{}", self.addrs[site])
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Our own child, by its handle: nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
