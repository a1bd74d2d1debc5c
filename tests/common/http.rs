//! A minimal HTTP/1.1 client: enough for WHIP/WHEP and the JSON API in tests.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// First header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header of that name.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The error code of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// Sends one request (Connection: close) and reads the whole response.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_request(addr, method, path, headers, body).await.unwrap()
}

/// As [`request`], with a transport failure (a refused or reset
/// connection) as an error rather than a panic.
pub async fn try_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"));
    }
    Ok(parse(&raw))
}

fn parse(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response { status, headers, body: String::from_utf8_lossy(&body).to_string() }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else { break };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// POST an SDP offer.
pub async fn post_sdp(addr: SocketAddr, path: &str, bearer: Option<&str>, sdp: &str) -> Response {
    let auth = bearer.map(|k| format!("Bearer {k}"));
    let mut h = vec![("Content-Type", "application/sdp")];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    request(addr, "POST", path, &h, sdp.as_bytes()).await
}

/// GET with `Authorization: Bearer <token>` (an access token or a stream key).
/// DELETE with a bearer credential.
pub async fn delete_auth(addr: SocketAddr, path: &str, token: &str) -> Response {
    request(addr, "DELETE", path, &[("Authorization", &format!("Bearer {token}"))], b"").await
}

pub async fn get_auth(addr: SocketAddr, path: &str, token: &str) -> Response {
    let auth = format!("Bearer {token}");
    request(addr, "GET", path, &[("Authorization", auth.as_str())], b"").await
}

/// A server-sent events stream being read: the events so far, as
/// `(event name, JSON data)`.
pub struct EventStream {
    events: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// `GET path` with `Accept: text/event-stream`, read in the background.
    /// (The body is chunked: an event never straddles the lines parsed
    /// here, since chunk-size lines are not `event:`/`data:` lines.)
    pub async fn open(addr: SocketAddr, path: &str) -> EventStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut text = String::new();
            let mut name = String::new();
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                while let Some(i) = text.find('\n') {
                    let line: String = text.drain(..=i).collect();
                    let line = line.trim_end();
                    if let Some(e) = line.strip_prefix("event:") {
                        name = e.trim().to_owned();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        if let Ok(v) = serde_json::from_str(d.trim()) {
                            sink.lock().unwrap().push((std::mem::take(&mut name), v));
                        }
                    }
                }
            }
        });
        EventStream { events, task }
    }

    /// The first event named `name` (from the start) that `f` accepts,
    /// waiting up to `secs`.
    pub async fn wait_for(&self, secs: u64, name: &str, f: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some((_, v)) = self.events.lock().unwrap().iter().find(|(n, v)| n == name && f(v)) {
                return Some(v.clone());
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Every event so far.
    pub fn seen(&self) -> Vec<(String, serde_json::Value)> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
