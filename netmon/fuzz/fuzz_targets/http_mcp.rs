//! The HTTP requests `/mcp` answers (the MCP server's and the agent's): any method, path,
//! headers and body, with and without the bearer token, through netmon's own layers (the token
//! check, the Host-header and JSON checks) into rmcp's session handling, over a scripted source
//! (no kernel). Every request gets a response head within a bound; none hangs or panics.
#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use netmon::config::Config;
use netmon::interface::{InterfaceInfo, InterfaceKind};
use netmon::mcp::NetmonMcp;
use netmon::mcp::http::{HttpOptions, router};
use netmon::secret::Token;
use netmon::source::scripted::ScriptedSource;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt as _;

const TOKEN: &str = "fuzz-token-0123456789abcdef0123456789";

struct Served {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

fn served() -> &'static Served {
    static S: OnceLock<Served> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let app = rt.block_on(async {
            let source = ScriptedSource {
                host: "localhost".into(),
                interfaces: vec![InterfaceInfo {
                    name: "eth0".into(),
                    index: 2,
                    up: true,
                    operstate: "up".into(),
                    mac: None,
                    mtu: 1500,
                    kind: InterfaceKind::Ethernet,
                    addresses: vec![],
                }],
                before: Default::default(),
                after: Default::default(),
            };
            let handler = NetmonMcp::new(Arc::new(source), Config::default());
            let token = Token::new(TOKEN, "fuzz").expect("token");
            let opts = HttpOptions::new("127.0.0.1:8765".parse().unwrap(), Some(token), vec![], vec![])
                .expect("options");
            // Never cancelled: the sessions' sweep runs for the process's life.
            let shutdown = tokio_util::sync::CancellationToken::new();
            router(handler, &opts, &shutdown)
        });
        Served { rt, app }
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut words = first.split_whitespace();
    let method = words.next().unwrap_or("POST");
    let path = words.next().unwrap_or("/mcp");
    let mut req = Request::builder().method(method).uri(path);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = req.body(Body::from(body.to_string())) else {
        return;
    };
    let s = served();
    s.rt.block_on(async {
        let answered = tokio::time::timeout(Duration::from_secs(5), s.app.clone().oneshot(req)).await;
        let response = answered.expect("a request got no response head within 5 s");
        let _ = response.map(|r| r.status());
    });
});
