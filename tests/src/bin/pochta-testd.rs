//! pochta-testd: a test fixture, not a product. A minimal line-protocol daemon built on the
//! pochta-server runtime so the integration tests can exercise what every daemon shares (config,
//! listeners, socket activation, TLS and STARTTLS, privilege drop, sd_notify, drain, limits) by
//! running a real binary. Protocol, CRLF lines of at most 1 KiB:
//! `PING` → `+OK pong`; `TLS` → `+OK <protocol>` or `+OK none`; `STARTTLS` → `+OK begin TLS`;
//! `QUIT` → `+OK bye`; anything else → `-ERR unknown command`.

use pochta_server::{
    daemon_main, Connection, DaemonConfig, Fill, ListenerConfig, ServerSection, ServiceKind,
    Session, Sessions, TlsSection,
};
use serde::Deserialize;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    server: ServerSection,
    tls: Option<TlsSection>,
    #[serde(rename = "listener", default)]
    listeners: Vec<ListenerConfig<Service>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Service {
    Echo,
}

impl ServiceKind for Service {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn default_idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }
}

impl DaemonConfig for Config {
    type Service = Service;
    fn server(&self) -> &ServerSection {
        &self.server
    }
    fn tls(&self) -> Option<&TlsSection> {
        self.tls.as_ref()
    }
    fn listeners(&self) -> &[ListenerConfig<Service>] {
        &self.listeners
    }
}

struct Echo;

impl Sessions for Echo {
    type Config = Config;

    async fn serve(self: Arc<Self>, mut conn: Connection, _session: Session<Service>) {
        if conn.write_all(b"+OK testd ready\r\n").await.is_err() {
            return;
        }
        loop {
            let line = loop {
                if let Some(i) = conn.buffered().iter().position(|&b| b == b'\n') {
                    let line = String::from_utf8_lossy(&conn.buffered()[..i])
                        .trim_end()
                        .to_owned();
                    conn.consume(i + 1);
                    break line;
                }
                if conn.buffered().len() > 1024 {
                    let _ = conn.write_all(b"-ERR line too long\r\n").await;
                    return;
                }
                let goodbye: &[u8] = match conn.fill().await {
                    Ok(Fill::Data) => continue,
                    Ok(Fill::Eof) | Err(_) => return,
                    Ok(Fill::Idle) => b"-ERR idle timeout\r\n",
                    Ok(Fill::Shutdown) => b"-ERR server shutting down\r\n",
                };
                let _ = conn.write_all(goodbye).await;
                conn.close().await;
                return;
            };
            let reply = match line.to_ascii_uppercase().as_str() {
                "PING" => "+OK pong\r\n".to_owned(),
                "TLS" => format!(
                    "+OK {}\r\n",
                    conn.tls().map_or("none", |t| t.protocol.as_str())
                ),
                "QUIT" => {
                    let _ = conn.write_all(b"+OK bye\r\n").await;
                    conn.close().await;
                    return;
                }
                "STARTTLS" if conn.can_starttls() => {
                    if conn.write_all(b"+OK begin TLS\r\n").await.is_err() {
                        return;
                    }
                    match conn.starttls().await {
                        Ok(0) => continue,
                        // Plaintext after STARTTLS is an injection attempt: drop the client.
                        Ok(_) | Err(_) => return,
                    }
                }
                _ => "-ERR unknown command\r\n".to_owned(),
            };
            if conn.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn busy_reply(&self, _service: &Service) -> &'static [u8] {
        b"-ERR too many connections\r\n"
    }
}

fn main() -> ExitCode {
    daemon_main::<Echo, _, _>("testd", "runtime test fixture", |_cfg| async {
        Ok(Arc::new(Echo))
    })
}
