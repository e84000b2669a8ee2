//! The monitor's HTTP/1.1 server (hyper), on a current-thread tokio runtime of its own:
//! routing, the bearer token, and the throughput sampler.

use super::Sources;
use super::connections::{Admission, IO_TIMEOUT, MAX_AGE, Serves, Slots, TimedIo};
use super::prometheus::{self, Format};
use super::status::Status;
use crate::metrics::Sample;
use crate::metrics::history::History;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::{debug, warn};

/// The dashboard, embedded: no CDN, nothing fetched from elsewhere.
const DASHBOARD: &str = include_str!("dashboard.html");

/// A client has this long to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The cookie a browser keeps the token in, after `?token=`.
const COOKIE: &str = "wasp_token";

/// What every request reads.
pub(super) struct Served {
    sources: Arc<Sources>,
    registry: Registry,
    history: Mutex<History>,
    /// The token's hash: compared in constant time (blake3's `Hash` equality is).
    token: Option<blake3::Hash>,
}

impl Served {
    pub(super) fn new(sources: Sources, token: Option<&str>) -> Self {
        let sources = Arc::new(sources);
        Served {
            registry: prometheus::registry(sources.clone()),
            sources,
            history: Mutex::new(History::default()),
            token: token.map(|token| blake3::hash(token.as_bytes())),
        }
    }

    fn sample(&self) {
        let stats = self.sources.view.stats();
        let sample = Sample::now(
            stats.finished,
            stats.failed,
            stats.queued as u64,
            stats.running as u64,
        );
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sample);
    }

    fn status(&self) -> Status {
        let history = self
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .samples();
        let node = self.sources.node.as_ref().map(|status| status());
        Status::new(&self.sources.view, history, node)
    }
}

/// Serves until `stop` fires (or its sender is dropped).
pub(super) fn run(listener: std::net::TcpListener, served: Served, stop: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            warn!(%error, "the monitor could not start its runtime");
            return;
        }
    };
    runtime.block_on(serve(listener, Arc::new(served), stop));
}

async fn serve(
    listener: std::net::TcpListener,
    served: Arc<Served>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            warn!(%error, "the monitor could not listen");
            return;
        }
    };
    let sampler = tokio::spawn(sample_every_second(served.clone()));
    let slots = Arc::new(Slots::default());
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "the monitor could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Over its bounds, a connection is closed at once: it takes no slot, and nothing
        // waits for it.
        let Some(admission) = slots.admit(peer.ip()) else {
            debug!(%peer, "the monitor closed a connection over its bounds");
            continue;
        };
        tokio::spawn(serve_connection(stream, admission, served.clone()));
    }
    sampler.abort();
}

/// Serves one connection until it closes, stalls for [`IO_TIMEOUT`], or reaches
/// [`MAX_AGE`] (then it finishes the request it is serving).
async fn serve_connection(stream: TcpStream, admission: Admission, served: Arc<Served>) {
    let serves = admission.serves;
    let service = service_fn(move |request| {
        let served = served.clone();
        async move { Ok::<_, Infallible>(respond(&served, &request, serves)) }
    });
    let io = TokioIo::new(TimedIo::new(stream, IO_TIMEOUT));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = tokio::time::sleep(MAX_AGE) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
    drop(admission);
}

async fn sample_every_second(served: Arc<Served>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        served.sample();
    }
}

type Reply = Response<Full<Bytes>>;

/// Answers one request, on a connection that `serves` what it may.
fn respond<B>(served: &Served, request: &Request<B>, serves: Serves) -> Reply {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    if served.token.is_none() && !local_host(request) {
        // A loopback monitor without a token trusts whoever reaches it: a web page whose
        // name was made to resolve to 127.0.0.1 (DNS rebinding) must not be served.
        return text(
            StatusCode::FORBIDDEN,
            "a loopback monitor answers to local host names only\n",
        );
    }
    let path = request.uri().path();
    match path {
        "/livez" | "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/readyz" if served.sources.ready() => return text(StatusCode::OK, "ready\n"),
        "/readyz" => return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        _ if serves == Serves::ProbesOnly => return busy(),
        _ => {}
    }
    match authorize(served, request) {
        Access::Granted => {}
        Access::Denied => return unauthorized(),
        Access::FromQuery => return keep_token_and_redirect(request),
    }
    match path {
        "/metrics" => {
            let accept = request.headers().get(header::ACCEPT);
            let format = Format::from_accept(accept.and_then(|value| value.to_str().ok()));
            let text = prometheus::encode(&served.registry, format);
            reply(StatusCode::OK, format.content_type(), text)
        }
        "/api/v1/status" => match serde_json::to_string(&served.status()) {
            Ok(json) => reply(StatusCode::OK, "application/json", json),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error}\n")),
        },
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /, /metrics, /api/v1/status, /livez or /readyz\n",
        ),
    }
}

/// Whether the request names this machine as its host: `localhost` or an IP address (what
/// a probe, a scraper or a browser on this machine sends), not a domain name.
fn local_host<B>(request: &Request<B>) -> bool {
    let Some(host) = request.headers().get(header::HOST) else {
        return true; // HTTP/1.0: no name to check, and no browser sends that
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// How a request stands with the token.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Granted,
    Denied,
    /// The right token, in the query string: keep it in a cookie, then drop it from the URL.
    FromQuery,
}

fn authorize<B>(served: &Served, request: &Request<B>) -> Access {
    let Some(expected) = served.token else {
        return Access::Granted;
    };
    let matches = |token: &str| blake3::hash(token.as_bytes()) == expected;
    // The cookie and the query carry the token percent-encoded (a token may hold any
    // character); the header carries it as it is.
    let decoded_matches = |token: &str| percent_decode(token).is_some_and(|token| matches(&token));
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(decoded_matches);
    if bearer.is_some_and(matches) || cookie {
        return Access::Granted;
    }
    let from_query = query_token(request.uri().query()).is_some_and(decoded_matches);
    if from_query {
        Access::FromQuery
    } else {
        Access::Denied
    }
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// Decodes `%XX` escapes (RFC 3986; `+` stays `+`, as a token may hold it); `None` if an
/// escape is malformed or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Escapes every byte of `text` but the unreserved characters of RFC 3986, so that any
/// token fits in a cookie.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn keep_token_and_redirect<B>(request: &Request<B>) -> Reply {
    let query = query_token(request.uri().query()).unwrap_or_default();
    let token = percent_encode(&percent_decode(query).unwrap_or_default());
    let mut reply = text(StatusCode::SEE_OTHER, "authorized\n");
    let headers = reply.headers_mut();
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    if let Ok(location) = HeaderValue::from_str(request.uri().path()) {
        headers.insert(header::LOCATION, location);
    }
    reply
}

/// The answer of a connection on a probe slot to anything but a probe.
fn busy() -> Reply {
    let mut reply = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the monitor is serving as many connections as it may: try again\n",
    );
    reply
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    reply
}

fn unauthorized() -> Reply {
    let mut reply = text(
        StatusCode::UNAUTHORIZED,
        "this monitor needs its bearer token: `Authorization: Bearer <token>`, or ?token=<token> in a browser\n",
    );
    reply
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    reply
}

fn text(status: StatusCode, body: &str) -> Reply {
    reply(status, "text/plain; charset=utf-8", body.to_string())
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_names_reach_a_loopback_monitor() {
        let with_host = |host: &str| {
            Request::builder()
                .header(header::HOST, host)
                .body(())
                .expect("a request")
        };
        for host in [
            "127.0.0.1:9464",
            "localhost:9464",
            "[::1]:9464",
            "LOCALHOST",
        ] {
            assert!(local_host(&with_host(host)), "{host}");
        }
        for host in ["evil.example:9464", "127.0.0.1.nip.io", "attacker"] {
            assert!(!local_host(&with_host(host)), "{host}");
        }
    }

    #[test]
    fn the_token_is_read_from_the_query_string() {
        assert_eq!(query_token(Some("a=1&token=abc&b=2")), Some("abc"));
        assert_eq!(query_token(Some("a=1")), None);
        assert_eq!(query_token(None), None);
    }

    #[test]
    fn a_token_in_a_url_or_a_cookie_is_percent_decoded() {
        assert_eq!(
            percent_decode("a%2Bb%2F%3D%20c+d").as_deref(),
            Some("a+b/= c+d")
        );
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for malformed in ["%", "%4", "%zz", "%FF"] {
            assert_eq!(percent_decode(malformed), None, "{malformed}");
        }
        let token = "s3cret/with+odd;chars= and é";
        assert_eq!(
            percent_decode(&percent_encode(token)).as_deref(),
            Some(token)
        );
        assert!(
            percent_encode(token)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"%-._~".contains(&b))
        );
    }

    /// A public monitor whose token needs escaping in a URL: `?token=` with the token
    /// percent-encoded is accepted, and so is the cookie it then sets.
    #[test]
    fn an_escaped_token_in_the_query_opens_the_dashboard() {
        let token = "a+b/c=d;e f 0123456789";
        let served = Served::new(test_sources(), Some(token));
        let get = |uri: &str, cookie: Option<&str>| {
            let mut request = Request::builder()
                .uri(uri)
                .header(header::HOST, "10.0.0.1:9464");
            if let Some(cookie) = cookie {
                request = request.header(header::COOKIE, cookie);
            }
            respond(
                &served,
                &request.body(()).expect("a request"),
                Serves::Everything,
            )
        };
        let escaped = percent_encode(token);
        let redirect = get(&format!("/?token={escaped}"), None);
        assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
        let cookie = redirect.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ASCII");
        let cookie = cookie.split(';').next().expect("name=value");
        assert_eq!(get("/", Some(cookie)).status(), StatusCode::OK);
        assert_eq!(
            get("/?token=a+b/c=d;e", None).status(),
            StatusCode::UNAUTHORIZED
        );
    }

    /// On a probe slot, the probes are answered and everything else is asked to retry.
    #[test]
    fn a_probe_slot_answers_the_probes_only() {
        let served = Served::new(test_sources(), None);
        let get = |path: &str| {
            let request = Request::builder()
                .uri(path)
                .header(header::HOST, "127.0.0.1:9464")
                .body(())
                .expect("a request");
            respond(&served, &request, Serves::ProbesOnly).status()
        };
        for probe in ["/livez", "/healthz", "/readyz"] {
            assert_eq!(get(probe), StatusCode::OK, "{probe}");
        }
        for path in ["/", "/metrics", "/api/v1/status"] {
            assert_eq!(get(path), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
    }

    fn test_sources() -> Sources {
        let server = crate::Server::builder()
            .workers(1)
            .build()
            .expect("a server");
        Sources {
            view: server.view(),
            node: None,
        }
    }
}
