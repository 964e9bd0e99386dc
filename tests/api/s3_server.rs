//! An S3-compatible server for tests: `s3s-fs` (which checks SigV4 signatures, presigned
//! ones included) on a free loopback port, over a temporary directory, with its own
//! credentials and a bucket created through the S3 API. `scripts/test.sh` installs it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use catalogd::config::{StorageKind, StorageSettings};
use uuid::Uuid;

pub const ACCESS_KEY: &str = "catalogd-test-access";
pub const SECRET_KEY: &str = "catalogd-test-secret-0123456789";
pub const BUCKET: &str = "catalogd-test";
/// The smallest part S3 accepts, so multipart tests need only a little over 5 MiB.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

pub struct S3Server {
    pub endpoint: String,
    child: Child,
    dir: PathBuf,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `s3s-fs` from PATH, or from cargo's bin directory where `cargo install` puts it.
fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("s3s-fs"))
            .collect::<Vec<_>>()
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join("s3s-fs"));
    on_path
        .chain(cargo_home)
        .find(|candidate| candidate.is_file())
        .expect("s3s-fs is installed (scripts/test.sh installs it: cargo install s3s-fs --features binary)")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl S3Server {
    /// Starts a server and creates the test bucket.
    pub async fn start() -> S3Server {
        let dir = std::env::temp_dir().join(format!("catalogd-s3-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // The port is free when chosen; another process could take it before the server
        // binds, so a server that exits at once is started again on another port.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(binary())
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("s3s-fs starts");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(20);
            let listening = loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break true;
                }
                if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            if !listening {
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            let server = S3Server {
                endpoint: format!("http://{addr}"),
                child,
                dir,
            };
            server.create_bucket().await;
            return server;
        }
        panic!("s3s-fs did not start listening");
    }

    /// Settings of an S3 store on this server.
    pub fn settings(&self) -> StorageSettings {
        StorageSettings {
            kind: StorageKind::S3,
            endpoint: self.endpoint.clone(),
            region: "us-east-1".into(),
            bucket: BUCKET.into(),
            path_style: true,
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.to_string().into(),
            presign_ttl_secs: 900,
            multipart_part_size_bytes: PART_SIZE,
        }
    }

    /// The same settings as `CATALOGD_STORAGE__*` variables, for `TestApp::spawn_with`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("KIND", "s3"),
            ("ENDPOINT", self.endpoint.as_str()),
            ("REGION", "us-east-1"),
            ("BUCKET", BUCKET),
            ("PATH_STYLE", "true"),
            ("ACCESS_KEY_ID", ACCESS_KEY),
            ("SECRET_ACCESS_KEY", SECRET_KEY),
        ]
        .into_iter()
        .map(|(k, v)| (format!("CATALOGD_STORAGE__{k}"), v.to_string()))
        .chain([(
            "CATALOGD_STORAGE__MULTIPART_PART_SIZE_BYTES".to_string(),
            PART_SIZE.to_string(),
        )])
        .collect()
    }

    async fn create_bucket(&self) {
        let store = catalogd::storage::S3Store::new(&self.settings()).unwrap();
        store
            .client()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("the test bucket is created");
    }
}
