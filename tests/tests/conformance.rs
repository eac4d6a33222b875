//! RFC 9111 conformance of the caching proxy, over real sockets: for each case, an origin
//! answers with the case's status and fields, a client sends two requests through
//! `examples/caching-proxy`, and the case says whether the second one may be answered from the
//! cache (one origin call) or must reach the origin (two). Each case names its section.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, extract::Path, response::IntoResponse, routing::get};
use http::{HeaderName, HeaderValue, StatusCode};
use tower_edge_caching_proxy::{ProxyConfig, proxy};
use tower_edge_tests::TestServer;

/// How many times the origin was called for the second request's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Calls {
    /// The second request was answered from the cache.
    One,
    /// The second request reached the origin.
    Two,
}

struct Case {
    section: &'static str,
    status: u16,
    response: &'static [(&'static str, &'static str)],
    first: &'static [(&'static str, &'static str)],
    second: &'static [(&'static str, &'static str)],
    calls: Calls,
}

const fn case(
    section: &'static str,
    status: u16,
    response: &'static [(&'static str, &'static str)],
    calls: Calls,
) -> Case {
    Case {
        section,
        status,
        response,
        first: &[],
        second: &[],
        calls,
    }
}

const fn with_requests(
    mut case: Case,
    first: &'static [(&'static str, &'static str)],
    second: &'static [(&'static str, &'static str)],
) -> Case {
    case.first = first;
    case.second = second;
    case
}

const FUTURE: &str = "Fri, 01 Jan 2100 00:00:00 GMT";
const PAST: &str = "Thu, 01 Jan 1970 00:00:01 GMT";

const CASES: &[Case] = &[
    // §3: what may be stored.
    case(
        "§3 200 with max-age",
        200,
        &[("cache-control", "max-age=60")],
        Calls::One,
    ),
    case(
        "§3 any final status with explicit freshness: 201",
        201,
        &[("cache-control", "max-age=60")],
        Calls::One,
    ),
    case(
        "§3 any final status with explicit freshness: 302",
        302,
        &[("cache-control", "max-age=60"), ("location", "/elsewhere")],
        Calls::One,
    ),
    case(
        "§3 any final status with explicit freshness: 403",
        403,
        &[("cache-control", "max-age=60")],
        Calls::One,
    ),
    case(
        "§3 any final status with explicit freshness: 500",
        500,
        &[("cache-control", "max-age=60")],
        Calls::One,
    ),
    case(
        "§3 Expires in the future permits storing a 307",
        307,
        &[("expires", FUTURE), ("location", "/x")],
        Calls::One,
    ),
    case(
        "§3 s-maxage permits storing a 202",
        202,
        &[("cache-control", "s-maxage=60")],
        Calls::One,
    ),
    case(
        "§3 a 206 to a request without Range is not stored",
        206,
        &[
            ("cache-control", "max-age=60"),
            ("content-range", "bytes 0-3/10"),
        ],
        Calls::Two,
    ),
    case(
        "§3 public alone gives no lifetime without heuristics",
        200,
        &[("cache-control", "public")],
        Calls::Two,
    ),
    case(
        "§3 no freshness information, heuristics off",
        200,
        &[("last-modified", PAST)],
        Calls::Two,
    ),
    case(
        "§3 204 with max-age (an empty body is stored)",
        204,
        &[("cache-control", "max-age=60")],
        Calls::One,
    ),
    case(
        "§3 200 with an empty body",
        200,
        &[("cache-control", "max-age=60"), ("content-length", "0")],
        Calls::One,
    ),
    // §5.2.2.5 no-store, §5.2.2.7 private, in any case.
    case(
        "§5.2.2.5 no-store",
        200,
        &[("cache-control", "no-store, max-age=60")],
        Calls::Two,
    ),
    case(
        "§5.2.2.5 NO-STORE",
        200,
        &[("cache-control", "NO-STORE, max-age=60")],
        Calls::Two,
    ),
    case(
        "§5.2.2.5 No-Store with public",
        200,
        &[("cache-control", "public, No-Store, max-age=60")],
        Calls::Two,
    ),
    case(
        "§5.2.2.5 no-store on its own line",
        200,
        &[
            ("cache-control", "max-age=60"),
            ("cache-control", "no-store"),
        ],
        Calls::Two,
    ),
    case(
        "§5.2.2.7 private",
        200,
        &[("cache-control", "private, max-age=60")],
        Calls::Two,
    ),
    case(
        "§5.2.2.7 Private",
        200,
        &[("cache-control", "max-age=60, Private")],
        Calls::Two,
    ),
    case(
        "§5.2.2.7 PRIVATE with s-maxage",
        200,
        &[("cache-control", "PRIVATE, s-maxage=60")],
        Calls::Two,
    ),
    case(
        "§5.2.2.7 qualified private",
        200,
        &[("cache-control", "private=\"x-user\", max-age=60")],
        Calls::Two,
    ),
    // §5.2.2.3 must-understand.
    case(
        "§5.2.2.3 must-understand, no-store on a known status",
        200,
        &[("cache-control", "must-understand, no-store, max-age=60")],
        Calls::One,
    ),
    case(
        "§5.2.2.3 must-understand on an unknown status",
        299,
        &[("cache-control", "must-understand, max-age=60")],
        Calls::Two,
    ),
    // §5.2.2.4 no-cache, §5.2.2.1 max-age, §5.2.2.10 s-maxage.
    case(
        "§5.2.2.4 no-cache: stored, never fresh",
        200,
        &[("cache-control", "no-cache, max-age=60"), ("etag", "\"v\"")],
        Calls::Two,
    ),
    case(
        "§5.2.2.4 No-Cache without validators",
        200,
        &[("cache-control", "No-Cache, max-age=60")],
        Calls::Two,
    ),
    case(
        "§5.2.2.1 max-age=0",
        200,
        &[("cache-control", "max-age=0")],
        Calls::Two,
    ),
    case(
        "§5.2.2.1 Max-Age in any case",
        200,
        &[("cache-control", "Max-Age=60")],
        Calls::One,
    ),
    case(
        "§4.2.1 an invalid max-age is stale",
        200,
        &[("cache-control", "max-age=abc")],
        Calls::Two,
    ),
    case(
        "§4.2.1 a negative max-age is stale",
        200,
        &[("cache-control", "max-age=-1")],
        Calls::Two,
    ),
    case(
        "§4.2.1 conflicting max-age is stale",
        200,
        &[("cache-control", "max-age=60, max-age=3600")],
        Calls::Two,
    ),
    case(
        "§4.2.1 a quoted max-age",
        200,
        &[("cache-control", "max-age=\"60\"")],
        Calls::One,
    ),
    case(
        "§5.2.2.10 s-maxage=0 wins over max-age",
        200,
        &[("cache-control", "s-maxage=0, max-age=60")],
        Calls::Two,
    ),
    case(
        "§5.2.2.10 S-MAXAGE wins over max-age=0",
        200,
        &[("cache-control", "S-MAXAGE=60, max-age=0")],
        Calls::One,
    ),
    case(
        "§5.2.2.8 proxy-revalidate while fresh",
        200,
        &[("cache-control", "proxy-revalidate, max-age=60")],
        Calls::One,
    ),
    // §5.3 Expires.
    case(
        "§5.3 Expires: 0 is in the past",
        200,
        &[("expires", "0")],
        Calls::Two,
    ),
    case(
        "§5.3 an invalid Expires is in the past",
        200,
        &[("expires", "next week")],
        Calls::Two,
    ),
    case(
        "§5.3 Expires in the past",
        200,
        &[("expires", PAST)],
        Calls::Two,
    ),
    case(
        "§5.3 Expires in the future",
        200,
        &[("expires", FUTURE)],
        Calls::One,
    ),
    case(
        "§5.3 Expires in RFC 850 form (RFC 9110 §5.6.7)",
        200,
        &[("expires", "Thursday, 01-Jan-37 00:00:00 GMT")],
        Calls::One,
    ),
    case(
        "§5.3 Expires in asctime form (RFC 9110 §5.6.7)",
        200,
        &[("expires", "Thu Jan  1 00:00:00 2037")],
        Calls::One,
    ),
    case(
        "§5.3 max-age wins over Expires",
        200,
        &[("cache-control", "max-age=0"), ("expires", FUTURE)],
        Calls::Two,
    ),
    case(
        "§5.3 two different Expires are stale",
        200,
        &[
            ("expires", FUTURE),
            ("expires", "Sat, 01 Jan 2101 00:00:00 GMT"),
        ],
        Calls::Two,
    ),
    // §5.1 Age and §4.2.3.
    case(
        "§5.1 an Age past max-age is stale",
        200,
        &[("cache-control", "max-age=60"), ("age", "100")],
        Calls::Two,
    ),
    case(
        "§5.1 an Age within max-age",
        200,
        &[("cache-control", "max-age=60"), ("age", "10")],
        Calls::One,
    ),
    case(
        "§5.1 an invalid Age is stale",
        200,
        &[("cache-control", "max-age=60"), ("age", "abc")],
        Calls::Two,
    ),
    case(
        "§5.1 a list Age counts its first member",
        200,
        &[("cache-control", "max-age=3600"), ("age", "7200, 0")],
        Calls::Two,
    ),
    case(
        "§4.2.3 a Date in the past adds to the age",
        200,
        &[("cache-control", "max-age=60"), ("date", PAST)],
        Calls::Two,
    ),
    // §4.1 Vary.
    with_requests(
        case(
            "§4.1 Vary: a different value",
            200,
            &[("cache-control", "max-age=60"), ("vary", "x-lang")],
            Calls::Two,
        ),
        &[("x-lang", "fr")],
        &[("x-lang", "de")],
    ),
    with_requests(
        case(
            "§4.1 Vary: the same value",
            200,
            &[("cache-control", "max-age=60"), ("vary", "X-Lang")],
            Calls::One,
        ),
        &[("x-lang", "fr")],
        &[("x-lang", "fr")],
    ),
    with_requests(
        case(
            "§4.1 Vary: absent on both",
            200,
            &[("cache-control", "max-age=60"), ("vary", "x-lang")],
            Calls::One,
        ),
        &[],
        &[],
    ),
    with_requests(
        case(
            "§4.1 Vary: present, then absent",
            200,
            &[("cache-control", "max-age=60"), ("vary", "x-lang")],
            Calls::Two,
        ),
        &[("x-lang", "fr")],
        &[],
    ),
    case(
        "§4.1 Vary: * never matches",
        200,
        &[("cache-control", "max-age=60"), ("vary", "*")],
        Calls::Two,
    ),
    with_requests(
        case(
            "§4.1 equivalent Accept-Language values share a variant",
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
            Calls::One,
        ),
        &[("accept-language", "en, fr;q=0.50")],
        &[("accept-language", "EN,FR;q=0.5")],
    ),
    with_requests(
        case(
            "§4.1 Vary names in any case",
            200,
            &[("cache-control", "max-age=60"), ("vary", "X-LANG")],
            Calls::Two,
        ),
        &[("x-lang", "fr")],
        &[("x-lang", "it")],
    ),
    // §3.5 Authorization.
    with_requests(
        case(
            "§3.5 an authorized answer without permission",
            200,
            &[("cache-control", "max-age=60")],
            Calls::Two,
        ),
        &[("authorization", "Bearer a")],
        &[],
    ),
    with_requests(
        case(
            "§3.5 public allows sharing an authorized answer",
            200,
            &[("cache-control", "public, max-age=60")],
            Calls::One,
        ),
        &[("authorization", "Bearer a")],
        &[],
    ),
    with_requests(
        case(
            "§3.5 s-maxage allows sharing an authorized answer",
            200,
            &[("cache-control", "s-maxage=60")],
            Calls::One,
        ),
        &[("authorization", "Bearer a")],
        &[],
    ),
    with_requests(
        case(
            "§3.5 must-revalidate allows sharing an authorized answer",
            200,
            &[("cache-control", "must-revalidate, max-age=60")],
            Calls::One,
        ),
        &[("authorization", "Bearer a")],
        &[],
    ),
    with_requests(
        case(
            "§3.5 an authorized request is not answered from the cache",
            200,
            &[("cache-control", "public, max-age=60")],
            Calls::Two,
        ),
        &[],
        &[("authorization", "Bearer b")],
    ),
    // §5.2.1 request directives.
    with_requests(
        case(
            "§5.2.1.5 request no-store",
            200,
            &[("cache-control", "max-age=60")],
            Calls::Two,
        ),
        &[("cache-control", "no-store")],
        &[],
    ),
    with_requests(
        case(
            "§5.2.1.4 request no-cache",
            200,
            &[("cache-control", "max-age=60")],
            Calls::Two,
        ),
        &[],
        &[("cache-control", "no-cache")],
    ),
    with_requests(
        case(
            "§5.2.1.4 request No-Cache in any case",
            200,
            &[("cache-control", "max-age=60")],
            Calls::Two,
        ),
        &[],
        &[("cache-control", "No-Cache")],
    ),
    with_requests(
        case(
            "§5.4 Pragma: no-cache without Cache-Control",
            200,
            &[("cache-control", "max-age=60")],
            Calls::Two,
        ),
        &[],
        &[("pragma", "no-cache")],
    ),
    with_requests(
        case(
            "§5.2.1.7 only-if-cached on a stored response",
            200,
            &[("cache-control", "max-age=60")],
            Calls::One,
        ),
        &[],
        &[("cache-control", "only-if-cached")],
    ),
    // RFC 9213 CDN-Cache-Control (read by default by the proxy).
    case(
        "RFC 9213 CDN-Cache-Control max-age over Cache-Control no-store",
        200,
        &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        Calls::One,
    ),
    case(
        "RFC 9213 CDN-Cache-Control no-store over Cache-Control max-age",
        200,
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ],
        Calls::Two,
    ),
    case(
        "RFC 9213 CDN-Cache-Control Private",
        200,
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "Private"),
        ],
        Calls::Two,
    ),
    case(
        "RFC 9213 CDN-Cache-Control replaces Expires",
        200,
        &[("expires", FUTURE), ("cdn-cache-control", "max-age=0")],
        Calls::Two,
    ),
    // §7.3 and cookies: a shared cache in front of an application.
    case(
        "§7.3 Set-Cookie is never replayed",
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "sid=1")],
        Calls::Two,
    ),
    with_requests(
        case(
            "a request with Cookie, not marked shareable",
            200,
            &[("cache-control", "max-age=60")],
            Calls::Two,
        ),
        &[("cookie", "sid=1")],
        &[],
    ),
    with_requests(
        case(
            "a request with Cookie, public",
            200,
            &[("cache-control", "public, max-age=60")],
            Calls::One,
        ),
        &[("cookie", "sid=1")],
        &[],
    ),
];

fn origin(calls: Arc<Vec<AtomicUsize>>) -> Router {
    Router::new().route(
        "/c/{n}",
        get(move |Path(n): Path<usize>| {
            let calls = Arc::clone(&calls);
            async move {
                let call = calls[n].fetch_add(1, Ordering::SeqCst) + 1;
                let case = &CASES[n];
                let status = StatusCode::from_u16(case.status).unwrap();
                let body = if status == StatusCode::NO_CONTENT
                    || case
                        .response
                        .iter()
                        .any(|(n, v)| *n == "content-length" && *v == "0")
                {
                    String::new()
                } else {
                    format!("case {n} call {call}")
                };
                let mut res = (status, body).into_response();
                for (name, value) in case.response {
                    if *name == "content-length" {
                        continue;
                    }
                    res.headers_mut().append(
                        HeaderName::from_static(name),
                        HeaderValue::from_static(value),
                    );
                }
                res
            }
        }),
    )
}

#[tokio::test]
async fn the_proxy_follows_rfc_9111_case_by_case() {
    let calls: Arc<Vec<AtomicUsize>> =
        Arc::new(CASES.iter().map(|_| AtomicUsize::new(0)).collect());
    let origin = TestServer::start(origin(Arc::clone(&calls))).await;
    let config = ProxyConfig::new(&format!("http://{}", origin.addr())).unwrap();
    let cache = TestServer::start(proxy(config)).await;
    let mut failures = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        let path = format!("/c/{n}");
        let first = cache.get(&path, case.first).await;
        assert_eq!(first.status().as_u16(), case.status, "{}", case.section);
        let second = cache.get(&path, case.second).await;
        let made = match calls[n].load(Ordering::SeqCst) {
            1 => Calls::One,
            2 => Calls::Two,
            other => panic!("{}: {other} origin calls", case.section),
        };
        if made != case.calls {
            let status = second
                .headers()
                .get("cache-status")
                .map_or("", |v| v.to_str().unwrap());
            failures.push(format!(
                "{}: expected {:?} origin call(s), got {made:?} (second answer: {status})",
                case.section, case.calls
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
