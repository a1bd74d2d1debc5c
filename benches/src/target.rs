//! The server under test: any WHIP/WHEP server (OnAir started by the
//! harness, or one named on the command line), or Janus through its
//! VideoRoom HTTP API. The publisher and viewers only see [`Target`].

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::http;
use crate::janus::{Janus, Subscriber};

/// User-Agent of every harness request: load-test clients say who they are,
/// so a server can keep them out of public viewer counts.
pub const USER_AGENT: &str = concat!("onair-bench/", env!("CARGO_PKG_VERSION"), " (load test)");

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// `http://host:port/path`, resolved.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:80") };
        let addr = hostport.to_socket_addrs().map_err(|e| format!("{url}: {e}"))?.next().ok_or_else(|| format!("{url}: no address"))?;
        Ok(Endpoint { addr, path: path.to_owned() })
    }
}

/// The server being measured.
pub enum Target {
    Whip(Box<WhipServer>),
    Janus(JanusTarget),
}

/// A WHIP/WHEP server.
pub struct WhipServer {
    pub name: String,
    pub whip: Endpoint,
    pub whep: Endpoint,
    pub key: String,
    /// Its process, when known: CPU and memory are read from `/proc`.
    pub pid: Option<u32>,
    /// Its media UDP addresses, when known (an OnAir the harness started).
    pub media: Vec<SocketAddr>,
    /// What an OnAir the harness started said when ready (`serve`'s JSON line).
    pub ready: serde_json::Value,
    child: Option<tokio::process::Child>,
    data_dir: Option<PathBuf>,
}

/// Janus with its one publisher feed.
pub struct JanusTarget {
    pub janus: Janus,
    feed: std::sync::Mutex<Option<u64>>,
}

/// What a viewer holds on to in order to leave.
pub enum Session {
    Whep { location: String },
    Janus { handle: u64 },
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Whip(s) => &s.name,
            Target::Janus(_) => "janus",
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            Target::Whip(s) => s.pid,
            Target::Janus(j) => Some(j.janus.pid()),
        }
    }

    /// The address harness peers bind to: one the server can reach.
    pub fn peer_ip(&self) -> Result<IpAddr, String> {
        match self {
            Target::Whip(s) => crate::peer::route_ip(s.whep.addr.ip()),
            Target::Janus(j) => Ok(IpAddr::V4(j.janus.host_ip())),
        }
    }

    /// Publishes: the offer in, the answer out.
    pub async fn publish(&self, offer: &str) -> Result<String, String> {
        self.publish_with(offer, None).await
    }

    /// [`Target::publish`] with another stream key than the target's (a
    /// co-host's).
    pub async fn publish_with(&self, offer: &str, key: Option<&str>) -> Result<String, String> {
        match self {
            Target::Whip(s) => {
                let auth = format!("Bearer {}", key.unwrap_or(&s.key));
                let res = http::request(
                    s.whip.addr,
                    "POST",
                    &s.whip.path,
                    &[("Content-Type", "application/sdp"), ("Authorization", &auth), ("User-Agent", USER_AGENT)],
                    offer.as_bytes(),
                    HTTP_TIMEOUT,
                )
                .await?;
                if res.status != 201 {
                    return Err(format!("WHIP {}: {}", res.status, String::from_utf8_lossy(&res.body)));
                }
                Ok(String::from_utf8_lossy(&res.body).into_owned())
            }
            Target::Janus(j) => {
                let (answer, feed) = j.janus.publish(offer).await?;
                *j.feed.lock().unwrap() = Some(feed);
                Ok(answer)
            }
        }
    }

    /// WHEP: the viewer's offer in, the answer and the session out.
    pub async fn whep(&self, offer: &str) -> Result<(String, Session), String> {
        self.whep_with(offer, None).await
    }

    /// [`Target::whep`] with a bearer token: a co-host watching its room
    /// as a host (its own media left out).
    pub async fn whep_with(&self, offer: &str, bearer: Option<&str>) -> Result<(String, Session), String> {
        let Target::Whip(s) = self else { return Err("not a WHEP server".into()) };
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut headers = vec![("Content-Type", "application/sdp"), ("User-Agent", USER_AGENT)];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let res = http::request(s.whep.addr, "POST", &s.whep.path, &headers, offer.as_bytes(), HTTP_TIMEOUT).await?;
        if res.status != 201 {
            return Err(format!("WHEP {}: {}", res.status, String::from_utf8_lossy(&res.body)));
        }
        let location = res.header("location").unwrap_or_default().to_owned();
        Ok((String::from_utf8_lossy(&res.body).into_owned(), Session::Whep { location }))
    }

    /// Janus: subscribe to the publisher's feed; Janus makes the offer.
    pub async fn janus_subscribe(&self) -> Result<Subscriber, String> {
        let Target::Janus(j) = self else { return Err("not Janus".into()) };
        let feed = j.feed.lock().unwrap().ok_or("nobody is publishing yet")?;
        j.janus.subscribe(feed).await
    }

    /// Janus: the viewer's answer to a subscription.
    pub async fn janus_answer(&self, sub: &Subscriber, answer: &str) -> Result<Session, String> {
        let Target::Janus(j) = self else { return Err("not Janus".into()) };
        j.janus.start_subscriber(sub, answer).await?;
        Ok(Session::Janus { handle: sub.handle })
    }

    /// Ends a viewer's session.
    pub async fn leave(&self, session: Session) -> Result<(), String> {
        match (self, session) {
            (Target::Whip(s), Session::Whep { location }) => {
                if location.is_empty() {
                    return Ok(());
                }
                // Location may be a path or an absolute URL.
                let (addr, path) = match Endpoint::parse(&location) {
                    Ok(e) => (e.addr, e.path),
                    Err(_) => (s.whep.addr, location),
                };
                let res = http::request(addr, "DELETE", &path, &[("User-Agent", USER_AGENT)], b"", HTTP_TIMEOUT).await?;
                if res.status >= 300 && res.status != 404 {
                    return Err(format!("DELETE {path}: {}", res.status));
                }
                Ok(())
            }
            (Target::Janus(j), Session::Janus { handle }) => j.janus.leave(handle).await,
            _ => Err("session of another server".into()),
        }
    }

    /// Stops what the harness started.
    pub async fn stop(self) {
        match self {
            Target::Whip(mut s) => {
                if let Some(mut c) = s.child.take() {
                    let _ = c.kill().await;
                }
                if let Some(d) = s.data_dir.take() {
                    let _ = std::fs::remove_dir_all(d);
                }
            }
            Target::Janus(j) => j.janus.stop().await,
        }
    }

    /// An external WHIP/WHEP server.
    pub fn external(whip: &str, whep: &str, key: &str, pid: Option<u32>) -> Result<Target, String> {
        Ok(Target::Whip(Box::new(WhipServer {
            name: "external".into(),
            whip: Endpoint::parse(whip)?,
            whep: Endpoint::parse(whep)?,
            key: key.to_owned(),
            pid,
            media: Vec::new(),
            ready: serde_json::Value::Null,
            child: None,
            data_dir: None,
        })))
    }

    /// Janus, already started.
    pub fn janus(janus: Janus) -> Target {
        Target::Janus(JanusTarget { janus, feed: std::sync::Mutex::new(None) })
    }

    /// Starts OnAir as a child process (see [`OnairProcess`]) with a stream
    /// key for the stream `bench`.
    pub async fn start_onair(workers: usize, media_bind: IpAddr) -> Result<Target, String> {
        Self::start_onair_with(workers, media_bind, &[]).await
    }

    /// [`Target::start_onair`] with more arguments to `serve`.
    pub async fn start_onair_with(workers: usize, media_bind: IpAddr, extra: &[String]) -> Result<Target, String> {
        let p = OnairProcess::spawn(workers, media_bind, extra).await?;
        let key = p.ready["key"].as_str().unwrap_or_default().to_owned();
        let media = p.ready["media"].as_array().into_iter().flatten().filter_map(|a| a.as_str()?.parse().ok()).collect();
        Ok(Target::Whip(Box::new(WhipServer {
            name: "onair".into(),
            whip: Endpoint { addr: p.http, path: "/whip".into() },
            whep: Endpoint { addr: p.http, path: format!("/whep/{}", crate::serve::STREAM) },
            key,
            pid: p.child.id(),
            media,
            ready: p.ready,
            child: Some(p.child),
            data_dir: Some(p.data_dir),
        })))
    }

    /// Whether simulcast layers must be offered highest first (Janus reads
    /// them by position; WHIP servers such as OnAir by rid).
    pub fn rids_high_first(&self) -> bool {
        matches!(self, Target::Janus(_))
    }

    /// Whether the viewer makes the offer (WHEP) or the server does (Janus).
    pub fn viewer_offers(&self) -> bool {
        matches!(self, Target::Whip(_))
    }
}

/// OnAir in a process of its own: this binary's `serve` command (the same
/// server library as `onair`) on a fresh data directory, so that its CPU
/// time and memory are its alone.
pub struct OnairProcess {
    /// The process (killed when dropped).
    pub child: tokio::process::Child,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// What it printed when ready (`http`, `key`, and `chat` when asked).
    pub ready: serde_json::Value,
    /// Its data directory (the caller removes it).
    pub data_dir: PathBuf,
}

impl OnairProcess {
    /// Starts it with `extra` arguments to `serve` and waits for its ready line.
    pub async fn spawn(workers: usize, media_bind: IpAddr, extra: &[String]) -> Result<OnairProcess, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let data_dir = std::env::temp_dir().join(format!("onair-bench-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(data_dir.join("server.log")).map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--http-addr", "127.0.0.1:0", "--media-port", "0", "--media-bind", &media_bind.to_string(), "--workers", &workers.to_string()])
            // Hundreds of viewers join from this one address (unless the
            // caller sets the limits itself: the abuse scenarios do).
            .args(if extra.iter().any(|a| a == "--media-rate") { vec![] } else { vec!["--media-rate", "100000", "--max-sessions-per-network", "100000"] })
            .args(extra)
            .env("ONAIR_LOG", std::env::var("ONAIR_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start OnAir: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .map_err(|_| "OnAir did not start within 120 s".to_string())?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("OnAir exited at start; see {}", data_dir.join("server.log").display()))?;
        let ready: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("OnAir said {}: {e}", &line[..line.len().min(200)]))?;
        let http: SocketAddr = ready["http"].as_str().unwrap_or_default().parse().map_err(|_| "OnAir did not say its address".to_string())?;
        Ok(OnairProcess { child, http, ready, data_dir })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://127.0.0.1:8080/whep/demo").unwrap();
        assert_eq!((e.addr, e.path.as_str()), ("127.0.0.1:8080".parse().unwrap(), "/whep/demo"));
        assert_eq!(Endpoint::parse("http://127.0.0.1").unwrap().addr.port(), 80);
        assert!(Endpoint::parse("https://example.com/whip").unwrap_err().contains("http://"));
    }
}
