//! A small HTTP/1.1 client for signaling: one request per connection
//! (`Connection: close`), bodies by Content-Length, chunked or to the end,
//! a timeout on the whole exchange. WHIP, WHEP and Janus's HTTP API need no
//! more, and hundreds of viewers signing in at once stay cheap.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends one request and reads the whole response.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], timeout: Duration) -> Result<Response, String> {
    tokio::time::timeout(timeout, exchange(addr, method, path, headers, body))
        .await
        .map_err(|_| format!("{method} http://{addr}{path}: no answer within {timeout:?}"))?
        .map_err(|e| format!("{method} http://{addr}{path}: {e}"))
}

async fn exchange(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<Response, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("incomplete response")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let mut r = Response { status, headers, body: raw[split + 4..].to_vec() };
    if r.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        r.body = dechunk(&r.body)?;
    } else if let Some(len) = r.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        r.body.truncate(len);
    }
    Ok(r)
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk")?;
        let size_text = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let data = b.get(eol + 2..eol + 2 + size).ok_or("truncated chunk")?;
        out.extend_from_slice(data);
        b = b.get(eol + 2 + size + 2..).ok_or("truncated chunk")?;
    }
}

/// One kept-alive HTTP/1.1 connection, for clients that send request after
/// request (responses must carry a Content-Length, as the JSON API's do).
pub struct KeepAlive {
    addr: SocketAddr,
    stream: tokio::io::BufReader<TcpStream>,
}

impl KeepAlive {
    /// Connects.
    pub async fn connect(addr: SocketAddr) -> Result<KeepAlive, String> {
        let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(KeepAlive { addr, stream: tokio::io::BufReader::new(s) })
    }

    /// Sends a request and reads its response, keeping the connection.
    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
        use tokio::io::AsyncBufReadExt;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", self.addr, body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        self.stream.get_mut().write_all(&out).await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        loop {
            let n = self.stream.read_until(b'\n', &mut head).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let mut r = parse(&head)?;
        let len = r.header("content-length").and_then(|v| v.parse::<usize>().ok()).ok_or("no Content-Length")?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
        r.body = body;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 201 Created\r\nLocation: /whep/x/1\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.header("location"), r.body.as_slice()), (201, Some("/whep/x/1"), &b"abc"[..]));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.json().unwrap()["a"], 1);
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab").is_err());
    }
}
