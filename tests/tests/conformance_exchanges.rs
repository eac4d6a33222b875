//! RFC 9111 conformance of the caching proxy in multi-step exchanges, over real sockets.
//!
//! Each case has a path of its own (`/x/{index}`), a script for the origin (what it answers to
//! the n-th request it receives for that case) and a list of client steps. A step says what the
//! client sends, and what must follow: the status, how many times the origin has been called so
//! far, the fields and body the client gets, and what the origin received. Each case names the
//! section it checks (RFC 9111 unless another RFC is named).
//!
//! The origin is written on a bare `TcpListener`, not on a framework, so that a case controls
//! every byte of its answers: a `103` before the final response, a `304`, no `Date`, or a
//! connection closed without an answer. It answers every request with `Connection: close`.
//!
//! Nothing waits for time to pass: a response is stale on arrival (`max-age=0`, or an `Age`
//! past its `max-age`, or a `Date` long ago), and the background request of
//! `stale-while-revalidate` is awaited through a signal the origin gives on every request.
//! All cases run, and the test fails listing every case that did not hold.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};
use tower_edge_caching_proxy::{ProxyConfig, proxy};
use tower_edge_tests::TestServer;

/// Header fields as `(name, value)` lines, in order.
type Fields = &'static [(&'static str, &'static str)];

/// The `Host` every client request carries, so that `Location` values can name it.
const HOST: &str = "conformance.test";

/// How long a step may take, background requests included; only a failing step waits for it.
const PATIENCE: Duration = Duration::from_secs(10);

/// In origin field values, replaced by the case's path (`/x/{index}`).
const CASE_PATH: &str = "{case}";

const DATE: &str = "Wed, 01 Jan 2020 00:00:00 GMT";
const AFTER_DATE: &str = "Thu, 02 Jan 2020 00:00:00 GMT";
const BEFORE_DATE: &str = "Tue, 31 Dec 2019 00:00:00 GMT";
const LAST_MODIFIED: &str = "Tue, 01 Jan 2019 00:00:00 GMT";
const BEFORE_LAST_MODIFIED: &str = "Mon, 01 Jan 2018 00:00:00 GMT";
const FUTURE: &str = "Fri, 01 Jan 2100 00:00:00 GMT";
const PAST: &str = "Thu, 01 Jan 1970 00:00:01 GMT";
/// A lifetime that outlasts the years since [`DATE`]: a response dated then is still fresh.
const LONG_LIFE: &str = "max-age=2000000000";
/// The seconds from [`DATE`] to any day this test runs on, at least.
const SINCE_DATE: u64 = 150_000_000;
const DIGITS: &str = "0123456789";

/// Fresh for an hour, no validators.
const FRESH: Fields = &[("cache-control", "max-age=3600")];
/// Fresh for an hour, with a strong ETag.
const FRESH_V1: Fields = &[("cache-control", "max-age=3600"), ("etag", "\"v1\"")];
/// Stale on arrival, with a strong ETag.
const STALE_V1: Fields = &[("cache-control", "max-age=0"), ("etag", "\"v1\"")];
/// Stale on arrival by its `Age`, with a strong ETag.
const AGED_V1: Fields = &[
    ("cache-control", "max-age=60"),
    ("age", "100"),
    ("etag", "\"v1\""),
];
/// The fields of a 304 that makes the stored response fresh for a minute.
const REFRESH: Fields = &[("cache-control", "max-age=60")];
/// Fresh for an hour, with both validators.
const VALIDATED: Fields = &[
    ("cache-control", "max-age=3600"),
    ("etag", "\"v1\""),
    ("last-modified", LAST_MODIFIED),
    ("content-type", "text/plain"),
];
/// Dated long ago and still fresh.
const DATED: Fields = &[("cache-control", LONG_LIFE), ("date", DATE)];
/// A representation to take ranges of: fresh, strong validators (`Last-Modified` a year before
/// `Date` is strong, RFC 9110 §8.8.2.2).
const RANGED: Fields = &[
    ("cache-control", LONG_LIFE),
    ("date", DATE),
    ("etag", "\"r1\""),
    ("last-modified", LAST_MODIFIED),
    ("content-type", "text/plain"),
];
const VARY_LANGUAGE: Fields = &[
    ("cache-control", "max-age=3600"),
    ("vary", "accept-language"),
];

/// Which proxy a case goes through.
#[derive(Clone, Copy, Debug)]
enum Config {
    /// `ProxyConfig::new(upstream)`.
    Default,
    /// With `stale_if_error(60 s)`: stale responses are served on upstream errors by default.
    StaleIfError,
    /// With `heuristic(true)`: freshness from `Last-Modified` (RFC 9111 §4.2.2).
    Heuristic,
}

/// A final response the origin sends.
#[derive(Debug)]
struct Reply {
    status: u16,
    fields: Fields,
    body: &'static str,
}

/// What the origin does with one request.
#[derive(Debug)]
enum Answer {
    Reply(Reply),
    /// `304` with `fields` when the request's `field` contains `value`, else `otherwise`.
    NotModifiedWhen {
        field: &'static str,
        value: &'static str,
        fields: Fields,
        otherwise: Reply,
    },
    /// Interim (1xx) responses, then the final one.
    Interim(&'static [(u16, Fields)], Reply),
    /// Reads the request and closes the connection without answering.
    Close,
}

/// A check of one header field, of the client's response or of the request the origin got.
/// Several lines of one field are joined with `, `; `:method` names the request method.
#[derive(Debug)]
enum Expect {
    Is(&'static str, &'static str),
    Has(&'static str, &'static str),
    Lacks(&'static str, &'static str),
    Absent(&'static str),
    Present(&'static str),
    AtLeast(&'static str, u64),
    AbsentOr(&'static str, &'static str),
}

/// One request of the client, and what must hold once it is answered.
#[derive(Debug)]
struct Step {
    method: &'static str,
    /// Appended to the case's path.
    path: &'static str,
    fields: Fields,
    status: u16,
    /// The origin's calls for this case so far, this step's included.
    calls: usize,
    expect: &'static [Expect],
    body: Option<&'static str>,
    /// Pieces the body must contain in this order (ASCII case ignored).
    parts: &'static [&'static str],
    /// Checks of the last request the origin received during this step.
    sent: &'static [Expect],
    /// The origin may be called after the answer (a background refresh): wait for `calls`.
    settles: bool,
    /// Repeated until it holds, within [`PATIENCE`]: for what a background request stores.
    eventually: bool,
}

#[derive(Debug)]
struct Case {
    section: &'static str,
    config: Config,
    /// The answer to the origin's n-th request of this case; the last one repeats.
    origin: &'static [Answer],
    steps: &'static [Step],
}

const fn case(section: &'static str, origin: &'static [Answer], steps: &'static [Step]) -> Case {
    Case {
        section,
        config: Config::Default,
        origin,
        steps,
    }
}

impl Case {
    const fn on(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
}

const fn reply(status: u16, fields: Fields, body: &'static str) -> Reply {
    Reply {
        status,
        fields,
        body,
    }
}

const fn ok(fields: Fields, body: &'static str) -> Answer {
    Answer::Reply(reply(200, fields, body))
}

const fn answer(status: u16, fields: Fields, body: &'static str) -> Answer {
    Answer::Reply(reply(status, fields, body))
}

/// `304` with `fields` when `If-None-Match` names `tag`.
const fn if_none_match(tag: &'static str, fields: Fields, otherwise: Reply) -> Answer {
    Answer::NotModifiedWhen {
        field: "if-none-match",
        value: tag,
        fields,
        otherwise,
    }
}

/// `304` with `fields` when `If-Modified-Since` is `date`.
const fn if_modified_since(date: &'static str, fields: Fields, otherwise: Reply) -> Answer {
    Answer::NotModifiedWhen {
        field: "if-modified-since",
        value: date,
        fields,
        otherwise,
    }
}

const fn step(method: &'static str, status: u16, calls: usize) -> Step {
    Step {
        method,
        path: "",
        fields: &[],
        status,
        calls,
        expect: &[],
        body: None,
        parts: &[],
        sent: &[],
        settles: false,
        eventually: false,
    }
}

const fn get(status: u16, calls: usize) -> Step {
    step("GET", status, calls)
}

const fn head(status: u16, calls: usize) -> Step {
    step("HEAD", status, calls)
}

impl Step {
    const fn at(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    const fn with(mut self, fields: Fields) -> Self {
        self.fields = fields;
        self
    }

    const fn body(mut self, body: &'static str) -> Self {
        self.body = Some(body);
        self
    }

    const fn parts(mut self, parts: &'static [&'static str]) -> Self {
        self.parts = parts;
        self
    }

    const fn expect(mut self, expect: &'static [Expect]) -> Self {
        self.expect = expect;
        self
    }

    const fn sent(mut self, sent: &'static [Expect]) -> Self {
        self.sent = sent;
        self
    }

    const fn settles(mut self) -> Self {
        self.settles = true;
        self
    }

    const fn eventually(mut self) -> Self {
        self.eventually = true;
        self
    }
}

const fn is(name: &'static str, value: &'static str) -> Expect {
    Expect::Is(name, value)
}

const fn has(name: &'static str, part: &'static str) -> Expect {
    Expect::Has(name, part)
}

const fn lacks(name: &'static str, part: &'static str) -> Expect {
    Expect::Lacks(name, part)
}

const fn absent(name: &'static str) -> Expect {
    Expect::Absent(name)
}

const fn present(name: &'static str) -> Expect {
    Expect::Present(name)
}

const fn at_least(name: &'static str, value: u64) -> Expect {
    Expect::AtLeast(name, value)
}

const fn absent_or(name: &'static str, value: &'static str) -> Expect {
    Expect::AbsentOr(name, value)
}

const HIT: Expect = has("cache-status", "hit");
const MISS: Expect = has("cache-status", "fwd=miss");
const STALE: Expect = has("cache-status", "fwd=stale");
const SENT_V1: Expect = is("if-none-match", "\"v1\"");

const CASES: &[Case] = &[
    // §4.3 Validation: a stale response is revalidated, and a 304 updates it.
    case(
        "§4.3.1, §4.3.4 a stale response with an ETag is revalidated with If-None-Match; the \
         304 gives the client the stored 200",
        &[
            ok(STALE_V1, "one"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1).body("one").expect(&[MISS]),
            get(200, 2)
                .body("one")
                .sent(&[SENT_V1])
                .expect(&[STALE, has("cache-status", "fwd-status=304")]),
        ],
    ),
    case(
        "§4.3.4 the 304's Cache-Control replaces the stored one, and the response is fresh again",
        &[
            ok(STALE_V1, "one"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2).expect(&[is("cache-control", "max-age=60")]),
            get(200, 2)
                .body("one")
                .expect(&[HIT, is("cache-control", "max-age=60")]),
        ],
    ),
    case(
        "§4.3.4 a field the 304 carries replaces the stored one",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0"),
                    ("etag", "\"v1\""),
                    ("x-version", "1"),
                ],
                "one",
            ),
            if_none_match(
                "\"v1\"",
                &[("cache-control", "max-age=60"), ("x-version", "2")],
                reply(200, FRESH, "two"),
            ),
        ],
        &[
            get(200, 1).expect(&[is("x-version", "1")]),
            get(200, 2).body("one").expect(&[is("x-version", "2")]),
            get(200, 2).body("one").expect(&[HIT, is("x-version", "2")]),
        ],
    ),
    case(
        "§4.3.4 stored fields the 304 does not carry are kept",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0"),
                    ("etag", "\"v1\""),
                    ("content-type", "text/plain"),
                    ("x-kept", "yes"),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").expect(&[
                is("x-kept", "yes"),
                is("content-type", "text/plain"),
                is("etag", "\"v1\""),
            ]),
            get(200, 2).expect(&[HIT, is("x-kept", "yes"), is("content-type", "text/plain")]),
        ],
    ),
    case(
        "§4.3.1 a stale response with Last-Modified is revalidated with If-Modified-Since",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0"),
                    ("last-modified", LAST_MODIFIED),
                ],
                "one",
            ),
            if_modified_since(LAST_MODIFIED, REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("one")
                .sent(&[
                    is("if-modified-since", LAST_MODIFIED),
                    absent("if-none-match"),
                ])
                .expect(&[STALE]),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.3.1 with both validators stored, both are sent",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0"),
                    ("etag", "\"v1\""),
                    ("last-modified", LAST_MODIFIED),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("one")
                .sent(&[SENT_V1, is("if-modified-since", LAST_MODIFIED)]),
        ],
    ),
    case(
        "§4.3.1 a weak ETag is sent back as it was stored",
        &[
            ok(
                &[("cache-control", "max-age=0"), ("etag", "W/\"v1\"")],
                "one",
            ),
            if_none_match("W/\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("one")
                .sent(&[is("if-none-match", "W/\"v1\"")]),
        ],
    ),
    case(
        "§4.3.3 a 200 to the revalidation is served and replaces the stored response",
        &[
            ok(STALE_V1, "one"),
            ok(
                &[("cache-control", "max-age=60"), ("etag", "\"v2\"")],
                "two",
            ),
        ],
        &[
            get(200, 1).body("one"),
            get(200, 2).body("two").sent(&[SENT_V1]).expect(&[STALE]),
            get(200, 2).body("two").expect(&[HIT, is("etag", "\"v2\"")]),
        ],
    ),
    case(
        "§4.3.4, RFC 9110 §6.6.1 a 304 without Date is dated on receipt: the response it \
         refreshes is fresh, not aged from the stored Date",
        &[
            ok(
                &[
                    ("cache-control", "max-age=60"),
                    ("date", DATE),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").sent(&[SENT_V1]),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.3.4 a 304 with a longer max-age: fresh for that long",
        &[
            ok(STALE_V1, "one"),
            if_none_match(
                "\"v1\"",
                &[("cache-control", "max-age=3600")],
                reply(200, FRESH, "two"),
            ),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one"),
            get(200, 2)
                .body("one")
                .expect(&[HIT, is("cache-control", "max-age=3600")]),
        ],
    ),
    case(
        "§4.3.4 a 304 with max-age=0 leaves the response stale: the next request revalidates",
        &[
            ok(AGED_V1, "one"),
            if_none_match(
                "\"v1\"",
                &[("cache-control", "max-age=0")],
                reply(200, FRESH, "two"),
            ),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").sent(&[SENT_V1]),
            get(200, 3).body("one").sent(&[SENT_V1]),
        ],
    ),
    case(
        "§5.1 Age counts from the last validation: after a 304 without Age the response is fresh",
        &[
            ok(AGED_V1, "one"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").sent(&[SENT_V1]),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.1, §4.3.4 a 304 refreshes the stored variant it validates, and no other",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0"),
                    ("etag", "\"v1\""),
                    ("vary", "accept-language"),
                ],
                "one",
            ),
            if_none_match(
                "\"v1\"",
                &[("cache-control", "max-age=60"), ("vary", "accept-language")],
                reply(200, FRESH, "two"),
            ),
            ok(VARY_LANGUAGE, "three"),
        ],
        &[
            get(200, 1).with(&[("accept-language", "fr")]).body("one"),
            get(200, 2)
                .with(&[("accept-language", "fr")])
                .body("one")
                .sent(&[SENT_V1, is("accept-language", "fr")])
                .expect(&[has("vary", "accept-language")]),
            get(200, 2)
                .with(&[("accept-language", "fr")])
                .body("one")
                .expect(&[HIT]),
            get(200, 3)
                .with(&[("accept-language", "de")])
                .body("three")
                .sent(&[absent("if-none-match")]),
        ],
    ),
    case(
        "§4.3.2 a client's matching If-None-Match on a stale response: the origin's 304 \
         confirms it, and the client gets 304",
        &[
            ok(STALE_V1, "one"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(304, 2)
                .with(&[("if-none-match", "\"v1\"")])
                .body("")
                .sent(&[has("if-none-match", "\"v1\"")])
                .expect(&[is("etag", "\"v1\"")]),
        ],
    ),
    case(
        "§4.3.2 a client's other If-None-Match on a stale response: the cache validates its own \
         and answers 200 with the stored body",
        &[
            ok(STALE_V1, "one"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .with(&[("if-none-match", "\"other\"")])
                .body("one")
                .sent(&[has("if-none-match", "\"v1\"")]),
        ],
    ),
    case(
        "§4.3.3 without stale-if-error a 5xx to a revalidation reaches the client, and the \
         stored response stays for the next one",
        &[
            ok(STALE_V1, "one"),
            answer(500, &[], "down"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(500, 2).body("down"),
            get(200, 3).body("one").sent(&[SENT_V1]),
        ],
    ),
    case(
        "§4.3.1 a stale response without validators is fetched again without conditionals",
        &[
            ok(&[("cache-control", "max-age=0")], "one"),
            ok(&[("cache-control", "max-age=0")], "two"),
        ],
        &[
            get(200, 1).body("one"),
            get(200, 2)
                .body("two")
                .sent(&[absent("if-none-match"), absent("if-modified-since")]),
        ],
    ),
    case(
        "§5.2.2.4 a no-cache response is stored and revalidated on every use",
        &[
            ok(&[("cache-control", "no-cache"), ("etag", "\"v1\"")], "one"),
            if_none_match(
                "\"v1\"",
                &[("cache-control", "no-cache")],
                reply(200, FRESH, "two"),
            ),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").sent(&[SENT_V1]),
            get(200, 3).body("one").sent(&[SENT_V1]),
        ],
    ),
    case(
        "§5.2.1.4 request no-cache: the origin's answer reaches the client and replaces the \
         stored one; RFC 9211 §2.2 fwd=request",
        &[ok(FRESH, "one"), ok(FRESH, "two")],
        &[
            get(200, 1).body("one"),
            get(200, 2)
                .with(&[("cache-control", "no-cache")])
                .body("two")
                .expect(&[has("cache-status", "fwd=request")]),
            get(200, 2).body("two").expect(&[HIT]),
        ],
    ),
    // §4.3.2 Conditional requests answered from the cache (RFC 9110 §13).
    case(
        "§4.3.2 If-None-Match matching the stored ETag: 304 from the cache",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(304, 1)
                .with(&[("if-none-match", "\"v1\"")])
                .body("")
                .expect(&[is("etag", "\"v1\""), HIT]),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.2 weak comparison: W/\"v1\" matches a stored \"v1\"",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(304, 1).with(&[("if-none-match", "W/\"v1\"")]).body(""),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.2 weak comparison: \"v1\" matches a stored W/\"v1\"",
        &[ok(
            &[("cache-control", "max-age=3600"), ("etag", "W/\"v1\"")],
            "one",
        )],
        &[
            get(200, 1),
            get(304, 1).with(&[("if-none-match", "\"v1\"")]).body(""),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.2 a list with one matching member",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(304, 1)
                .with(&[("if-none-match", "\"a\", \"v1\"")])
                .body(""),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.2 If-None-Match: * matches a stored response",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(304, 1).with(&[("if-none-match", "*")]).body(""),
        ],
    ),
    case(
        "§4.3.2 a non-matching If-None-Match gets the stored 200",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("if-none-match", "\"other\"")])
                .body("one")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§4.3.2 If-Modified-Since equal to the stored Last-Modified: 304",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(304, 1)
                .with(&[("if-modified-since", LAST_MODIFIED)])
                .body(""),
        ],
    ),
    case(
        "§4.3.2 If-Modified-Since before the stored Last-Modified: 200",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("if-modified-since", BEFORE_LAST_MODIFIED)])
                .body("one"),
        ],
    ),
    case(
        "§4.3.2 without Last-Modified, If-Modified-Since is compared with the stored Date: \
         later gets 304",
        &[ok(DATED, "one")],
        &[
            get(200, 1),
            get(304, 1)
                .with(&[("if-modified-since", AFTER_DATE)])
                .body(""),
        ],
    ),
    case(
        "§4.3.2 without Last-Modified, If-Modified-Since before the stored Date gets 200",
        &[ok(DATED, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("if-modified-since", BEFORE_DATE)])
                .body("one"),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.3 If-Modified-Since in the future is evaluated: 304",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(304, 1).with(&[("if-modified-since", FUTURE)]).body(""),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.3 an If-Modified-Since that is not a date is ignored",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("if-modified-since", "yesterday")])
                .body("one"),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.2.2 If-None-Match takes precedence: no match, a later \
         If-Modified-Since, 200",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[
                    ("if-none-match", "\"other\""),
                    ("if-modified-since", FUTURE),
                ])
                .body("one"),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.2.2 If-None-Match takes precedence: a match, an earlier \
         If-Modified-Since, 304",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(304, 1)
                .with(&[
                    ("if-none-match", "\"v1\""),
                    ("if-modified-since", BEFORE_LAST_MODIFIED),
                ])
                .body(""),
        ],
    ),
    case(
        "RFC 9110 §15.4.5 the cache's 304 carries ETag, Cache-Control, Vary, Content-Location \
         and Expires, and no body or content metadata",
        &[ok(
            &[
                ("cache-control", "max-age=3600"),
                ("etag", "\"v1\""),
                ("vary", "accept-language"),
                ("content-location", "/doc.en"),
                ("expires", FUTURE),
                ("content-type", "text/plain"),
            ],
            "full body",
        )],
        &[
            get(200, 1)
                .with(&[("accept-language", "en")])
                .body("full body"),
            get(304, 1)
                .with(&[("accept-language", "en"), ("if-none-match", "\"v1\"")])
                .body("")
                .expect(&[
                    is("etag", "\"v1\""),
                    is("cache-control", "max-age=3600"),
                    has("vary", "accept-language"),
                    is("content-location", "/doc.en"),
                    is("expires", FUTURE),
                    absent("content-type"),
                    absent_or("content-length", "9"),
                ]),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.1 If-Match that does not match: 412 from the cache",
        &[ok(VALIDATED, "one")],
        &[get(200, 1), get(412, 1).with(&[("if-match", "\"other\"")])],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.1 If-Match that matches: 200",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(200, 1).with(&[("if-match", "\"v1\"")]).body("one"),
        ],
    ),
    case(
        "§4.3.2, RFC 9110 §13.1.4 If-Unmodified-Since before Last-Modified: 412",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            get(412, 1).with(&[("if-unmodified-since", BEFORE_LAST_MODIFIED)]),
        ],
    ),
    case(
        "RFC 9110 §13.2.1 a stored 404 is not made a 304 by If-None-Match",
        &[answer(
            404,
            &[("cache-control", "max-age=3600"), ("etag", "\"v1\"")],
            "gone",
        )],
        &[
            get(404, 1).body("gone"),
            get(404, 1)
                .with(&[("if-none-match", "\"v1\"")])
                .body("gone"),
        ],
    ),
    case(
        "§4.3.2 HEAD with a matching If-None-Match: 304 from the cache",
        &[ok(VALIDATED, "one")],
        &[
            get(200, 1),
            head(304, 1).with(&[("if-none-match", "\"v1\"")]).body(""),
        ],
    ),
    case(
        "§4.3.2 a conditional miss is answered from the fetched response, which is stored whole \
         (the documented choice: conditionals are answered on misses too)",
        &[ok(FRESH_V1, "one")],
        &[
            get(304, 1).with(&[("if-none-match", "\"v1\"")]).body(""),
            get(200, 1).body("one").expect(&[HIT]),
        ],
    ),
    // §4.2.3 and §5.1 Age; RFC 9110 §6.6.1 Date.
    case(
        "§5.1 a hit carries Age",
        &[ok(FRESH, "one")],
        &[get(200, 1), get(200, 1).expect(&[HIT, at_least("age", 0)])],
    ),
    case(
        "§4.2.3, RFC 9110 §6.6.1 a hit carries the stored Date, not a new one",
        &[ok(DATED, "one")],
        &[
            get(200, 1).expect(&[is("date", DATE)]),
            get(200, 1).expect(&[HIT, is("date", DATE)]),
        ],
    ),
    case(
        "§4.2.3 the apparent age (now minus Date) counts in a hit's Age",
        &[ok(DATED, "one")],
        &[
            get(200, 1),
            get(200, 1).expect(&[HIT, at_least("age", SINCE_DATE)]),
        ],
    ),
    case(
        "§4.2.3 the origin's Age counts: a hit's Age is at least the Age received",
        &[ok(
            &[("cache-control", "max-age=3600"), ("age", "30")],
            "one",
        )],
        &[get(200, 1), get(200, 1).expect(&[HIT, at_least("age", 30)])],
    ),
    case(
        "§4.2.3 the larger of the apparent age and Age counts",
        &[ok(
            &[("cache-control", LONG_LIFE), ("date", DATE), ("age", "30")],
            "one",
        )],
        &[
            get(200, 1),
            get(200, 1).expect(&[HIT, at_least("age", SINCE_DATE)]),
        ],
    ),
    case(
        "RFC 9110 §6.6.1 a response without Date is stored and served with Date and Age",
        &[ok(FRESH, "one")],
        &[
            get(200, 1).expect(&[present("date")]),
            get(200, 1).expect(&[HIT, present("date"), present("age")]),
        ],
    ),
    // RFC 5861 §3 stale-while-revalidate.
    case(
        "RFC 5861 §3 stale-while-revalidate: the stale response at once, one background \
         request, then the refreshed response",
        &[
            ok(
                &[
                    ("cache-control", "max-age=60, stale-while-revalidate=600"),
                    ("age", "100"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            ok(
                &[("cache-control", "max-age=3600"), ("etag", "\"v2\"")],
                "two",
            ),
        ],
        &[
            get(200, 1).body("one"),
            get(200, 2)
                .body("one")
                .settles()
                .sent(&[is(":method", "GET"), SENT_V1])
                .expect(&[has("cache-status", "stale-while-revalidate")]),
            get(200, 2)
                .body("two")
                .eventually()
                .expect(&[HIT, lacks("cache-status", "stale")]),
        ],
    ),
    case(
        "RFC 5861 §3 a background revalidation answered 304 makes the stored response fresh",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0, stale-while-revalidate=600"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            if_none_match(
                "\"v1\"",
                &[("cache-control", "max-age=3600")],
                reply(200, FRESH, "two"),
            ),
        ],
        &[
            get(200, 1).body("one"),
            get(200, 2)
                .body("one")
                .settles()
                .sent(&[SENT_V1])
                .expect(&[has("cache-status", "stale-while-revalidate")]),
            get(200, 2)
                .body("one")
                .eventually()
                .expect(&[HIT, lacks("cache-status", "stale")]),
        ],
    ),
    case(
        "§4.2.4, §5.2.2.2 must-revalidate forbids stale-while-revalidate: the request waits for \
         the origin",
        &[
            ok(
                &[
                    (
                        "cache-control",
                        "max-age=0, stale-while-revalidate=600, must-revalidate",
                    ),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("two")
                .expect(&[STALE, lacks("cache-status", "stale-while-revalidate")]),
        ],
    ),
    case(
        "§4.2.4, §5.2.2.4 no-cache forbids stale-while-revalidate",
        &[
            ok(
                &[
                    ("cache-control", "no-cache, stale-while-revalidate=600"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("two")
                .expect(&[lacks("cache-status", "stale-while-revalidate")]),
        ],
    ),
    case(
        "§4.2.4, §5.2.2.8 proxy-revalidate forbids stale-while-revalidate in a shared cache",
        &[
            ok(
                &[
                    (
                        "cache-control",
                        "max-age=0, stale-while-revalidate=600, proxy-revalidate",
                    ),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("two")
                .expect(&[lacks("cache-status", "stale-while-revalidate")]),
        ],
    ),
    // RFC 5861 §4 stale-if-error.
    case(
        "RFC 5861 §4 stale-if-error: the stale response when the origin answers 500; RFC 9211 \
         §2.4 fwd-status=500",
        &[
            ok(
                &[
                    ("cache-control", "max-age=60, stale-if-error=600"),
                    ("age", "100"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(500, &[], "down"),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").expect(&[
                has("cache-status", "stale-if-error"),
                has("cache-status", "fwd-status=500"),
            ]),
        ],
    ),
    case(
        "RFC 5861 §4 stale-if-error: the stale response when the origin answers 502",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0, stale-if-error=600"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(502, &[], "bad gateway"),
        ],
        &[get(200, 1), get(200, 2).body("one")],
    ),
    case(
        "RFC 5861 §4 stale-if-error: the stale response when the origin answers 503",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0, stale-if-error=600"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(503, &[("retry-after", "10")], "unavailable"),
        ],
        &[get(200, 1), get(200, 2).body("one")],
    ),
    case(
        "RFC 5861 §4 stale-if-error: the stale response when the origin answers 504",
        &[
            ok(&[("cache-control", "max-age=0, stale-if-error=600")], "one"),
            answer(504, &[], "timeout"),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").sent(&[absent("if-none-match")]),
        ],
    ),
    case(
        "RFC 5861 §4 stale-if-error: the stale response when the origin closes the connection \
         without answering",
        &[
            ok(
                &[
                    ("cache-control", "max-age=60, stale-if-error=600"),
                    ("age", "100"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            Answer::Close,
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("one")
                .expect(&[has("cache-status", "stale-if-error")]),
        ],
    ),
    case(
        "RFC 5861 §4 a 404 is not an error: it reaches the client",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0, stale-if-error=600"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(404, &[], "gone"),
        ],
        &[get(200, 1), get(404, 2).body("gone")],
    ),
    case(
        "§4.2.4, §5.2.2.2 must-revalidate forbids stale-if-error: the 500 reaches the client",
        &[
            ok(
                &[
                    (
                        "cache-control",
                        "max-age=0, stale-if-error=600, must-revalidate",
                    ),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(500, &[], "down"),
        ],
        &[get(200, 1), get(500, 2).body("down")],
    ),
    case(
        "§4.2.4 without stale-if-error a 500 reaches the client",
        &[ok(AGED_V1, "one"), answer(500, &[], "down")],
        &[get(200, 1), get(500, 2).body("down")],
    ),
    case(
        "§4.2.4 without stale-if-error a connection closed without answering gives 502",
        &[ok(AGED_V1, "one"), Answer::Close],
        &[get(200, 1), get(502, 2)],
    ),
    case(
        "RFC 5861 §4 the error is not stored: after a stale-if-error answer the next request \
         goes to the origin again",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0, stale-if-error=600"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(500, &[], "down"),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one"),
            get(200, 3).body("two"),
            get(200, 3).body("two").expect(&[HIT]),
        ],
    ),
    case(
        "RFC 5861 §4 with the proxy's default stale-if-error, a stale response without the \
         directive is served on a 500",
        &[ok(STALE_V1, "one"), answer(500, &[], "down")],
        &[
            get(200, 1),
            get(200, 2)
                .body("one")
                .expect(&[has("cache-status", "stale-if-error")]),
        ],
    )
    .on(Config::StaleIfError),
    case(
        "RFC 5861 §4 with the proxy's default stale-if-error, a stale response is served when \
         the origin closes the connection",
        &[ok(STALE_V1, "one"), Answer::Close],
        &[get(200, 1), get(200, 2).body("one")],
    )
    .on(Config::StaleIfError),
    case(
        "§4.2.4 the proxy's default stale-if-error does not apply to must-revalidate",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0, must-revalidate"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(500, &[], "down"),
        ],
        &[get(200, 1), get(500, 2).body("down")],
    )
    .on(Config::StaleIfError),
    case(
        "§5.2.2.10 s-maxage implies proxy-revalidate: the proxy's default stale-if-error does \
         not apply",
        &[
            ok(
                &[("cache-control", "s-maxage=0"), ("etag", "\"v1\"")],
                "one",
            ),
            answer(500, &[], "down"),
        ],
        &[get(200, 1), get(500, 2).body("down")],
    )
    .on(Config::StaleIfError),
    case(
        "RFC 5861 §4 the response's stale-if-error=0 overrides the proxy's default \
         (documented: the response's window first)",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0, stale-if-error=0"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(500, &[], "down"),
        ],
        &[get(200, 1), get(500, 2).body("down")],
    )
    .on(Config::StaleIfError),
    // §5.2.1 Request directives.
    case(
        "§5.2.1.2 max-stale below the staleness: the response is revalidated",
        &[
            ok(AGED_V1, "one"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .with(&[("cache-control", "max-stale=10")])
                .body("one")
                .sent(&[SENT_V1]),
        ],
    ),
    case(
        "§5.2.2.2 must-revalidate overrides the client's max-stale",
        &[
            ok(
                &[
                    ("cache-control", "max-age=60, must-revalidate"),
                    ("age", "100"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .with(&[("cache-control", "max-stale=3600")])
                .body("one")
                .sent(&[SENT_V1]),
        ],
    ),
    case(
        "§5.2.1.3 min-fresh within the remaining lifetime: a hit",
        &[ok(
            &[("cache-control", "max-age=3600"), ("age", "30")],
            "one",
        )],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("cache-control", "min-fresh=60")])
                .body("one")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§5.2.1.1 request max-age above the stored response's age: a hit",
        &[ok(
            &[("cache-control", "max-age=3600"), ("age", "30")],
            "one",
        )],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("cache-control", "max-age=600")])
                .body("one")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§5.2.1.2 max-stale above the staleness: the stale response, without the origin",
        &[ok(AGED_V1, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("cache-control", "max-stale=3600")])
                .body("one")
                .expect(&[
                    has("cache-status", "detail=max-stale"),
                    has("cache-status", "ttl=-"),
                ]),
        ],
    ),
    case(
        "§5.2.1.2 max-stale without a value takes any staleness",
        &[ok(AGED_V1, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("cache-control", "Max-Stale")])
                .body("one")
                .expect(&[has("cache-status", "detail=max-stale")]),
        ],
    ),
    case(
        "§5.2.1.2 with §5.2.1.1: max-stale does not lift the client's max-age",
        &[
            ok(AGED_V1, "one"),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .with(&[("cache-control", "max-stale, max-age=50")])
                .sent(&[SENT_V1]),
        ],
    ),
    case(
        "§5.2.1.3 min-fresh beyond the remaining lifetime: validated with the origin, RFC 9211 \
         fwd=request",
        &[
            ok(
                &[
                    ("cache-control", "max-age=3600"),
                    ("age", "30"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .with(&[("cache-control", "min-fresh=7200")])
                .body("one")
                .sent(&[SENT_V1])
                .expect(&[has("cache-status", "fwd=request")]),
        ],
    ),
    case(
        "§5.2.1.1 request max-age=0 on a fresh response of age 30: validated with the origin",
        &[
            ok(
                &[
                    ("cache-control", "max-age=3600"),
                    ("age", "30"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .with(&[("cache-control", "max-age=0")])
                .body("one")
                .sent(&[SENT_V1])
                .expect(&[has("cache-status", "fwd=request")]),
        ],
    ),
    case(
        "§5.2.1.1 a request max-age refusal is not answered stale-while-revalidate",
        &[
            ok(
                &[
                    ("cache-control", "max-age=3600, stale-while-revalidate=600"),
                    ("age", "30"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .with(&[("cache-control", "max-age=10")])
                .sent(&[SENT_V1])
                .expect(&[lacks("cache-status", "stale-while-revalidate")]),
        ],
    ),
    case(
        "§5.2.1.7 only-if-cached with only a stale stored response: 504 without the origin",
        &[ok(AGED_V1, "one")],
        &[
            get(200, 1),
            get(504, 1)
                .with(&[("cache-control", "only-if-cached")])
                .expect(&[has("cache-status", "fwd=stale; detail=only-if-cached")]),
        ],
    ),
    case(
        "§5.2.1.7 only-if-cached with max-stale: the stale stored response",
        &[ok(AGED_V1, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("cache-control", "only-if-cached, max-stale")])
                .body("one"),
        ],
    ),
    case(
        "RFC 5861 §3, §4.2.4: past its stale-while-revalidate window (stale by 940 s of 10) the \
         request waits for the origin",
        &[
            ok(
                &[
                    ("cache-control", "max-age=60, stale-while-revalidate=10"),
                    ("age", "1000"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .sent(&[SENT_V1])
                .expect(&[STALE, lacks("cache-status", "stale-while-revalidate")]),
        ],
    ),
    case(
        "RFC 5861 §4, §4.2.4: past its stale-if-error window the origin's 500 reaches the client",
        &[
            ok(
                &[
                    ("cache-control", "max-age=60, stale-if-error=10"),
                    ("age", "1000"),
                    ("etag", "\"v1\""),
                ],
                "one",
            ),
            answer(500, &[], "down"),
        ],
        &[get(200, 1), get(500, 2).body("down")],
    ),
    // §4.4 Invalidation.
    case(
        "§4.4 a successful POST invalidates the stored response",
        &[
            ok(FRESH, "one"),
            answer(201, &[], "created"),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            get(200, 1).body("one"),
            step("POST", 201, 2),
            get(200, 3).body("two").expect(&[MISS]),
        ],
    ),
    case(
        "§4.4 a successful PUT invalidates the stored response",
        &[ok(FRESH, "one"), answer(204, &[], ""), ok(FRESH, "two")],
        &[get(200, 1), step("PUT", 204, 2), get(200, 3).body("two")],
    ),
    case(
        "§4.4 a successful DELETE invalidates the stored response",
        &[
            ok(FRESH, "one"),
            answer(200, &[], "deleted"),
            ok(FRESH, "two"),
        ],
        &[get(200, 1), step("DELETE", 200, 2), get(200, 3).body("two")],
    ),
    case(
        "§4.4 a successful PATCH invalidates the stored response",
        &[
            ok(FRESH, "one"),
            answer(200, &[], "patched"),
            ok(FRESH, "two"),
        ],
        &[get(200, 1), step("PATCH", 200, 2), get(200, 3).body("two")],
    ),
    case(
        "§4.4 a POST answered 303 (not an error) invalidates the stored response",
        &[
            ok(FRESH, "one"),
            answer(303, &[("location", "/elsewhere")], ""),
            ok(FRESH, "two"),
        ],
        &[get(200, 1), step("POST", 303, 2), get(200, 3).body("two")],
    ),
    case(
        "§4.4 a POST answered 500 does not invalidate",
        &[
            ok(FRESH, "one"),
            answer(500, &[], "failed"),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            step("POST", 500, 2),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.4 a POST answered 404 does not invalidate",
        &[
            ok(FRESH, "one"),
            answer(404, &[], "no such thing"),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            step("POST", 404, 2),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.4 (a MAY, the documented choice) a same-origin Location (absolute path) is \
         invalidated",
        &[
            ok(FRESH, "one"),
            answer(201, &[("location", "{case}/b")], ""),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1).at("/b"),
            get(200, 1).at("/b").body("one"),
            step("POST", 201, 2),
            get(200, 3).at("/b").body("two"),
        ],
    ),
    case(
        "§4.4 (a MAY, the documented choice) with RFC 9110 §10.2.2: a relative Location is \
         resolved against the request's target and invalidated",
        &[
            ok(FRESH, "one"),
            answer(201, &[("location", "b")], ""),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1).at("/b"),
            get(200, 1).at("/b").body("one"),
            step("POST", 201, 2).at("/a"),
            get(200, 3).at("/b").body("two"),
        ],
    ),
    case(
        "§4.4 (a MAY, the documented choice) a same-origin Location (absolute URI) is \
         invalidated",
        &[
            ok(FRESH, "one"),
            answer(201, &[("location", "http://conformance.test{case}/b")], ""),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1).at("/b"),
            step("POST", 201, 2),
            get(200, 3).at("/b").body("two"),
        ],
    ),
    case(
        "§4.4 (a MAY, the documented choice) a same-origin Content-Location is invalidated",
        &[
            ok(FRESH, "one"),
            answer(200, &[("content-location", "{case}/b")], "updated"),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1).at("/b"),
            step("PUT", 200, 2),
            get(200, 3).at("/b").body("two"),
        ],
    ),
    case(
        "§4.4 (MUST NOT) a Location on another host is not invalidated",
        &[
            ok(FRESH, "one"),
            answer(201, &[("location", "http://other.test{case}/b")], ""),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1).at("/b"),
            step("POST", 201, 2),
            get(200, 2).at("/b").body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.4 an unsafe request invalidates its own URL, not others on the same path",
        &[ok(FRESH, "one"), answer(201, &[], ""), ok(FRESH, "two")],
        &[
            get(200, 1).at("/b"),
            step("POST", 201, 2),
            get(200, 2).at("/b").body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.4 every stored variant of the URL is invalidated",
        &[
            ok(VARY_LANGUAGE, "first"),
            ok(VARY_LANGUAGE, "second"),
            answer(201, &[], ""),
            ok(VARY_LANGUAGE, "third"),
            ok(VARY_LANGUAGE, "fourth"),
        ],
        &[
            get(200, 1).with(&[("accept-language", "fr")]).body("first"),
            get(200, 2)
                .with(&[("accept-language", "de")])
                .body("second"),
            get(200, 2).with(&[("accept-language", "fr")]).body("first"),
            step("POST", 201, 3),
            get(200, 4).with(&[("accept-language", "fr")]).body("third"),
            get(200, 5)
                .with(&[("accept-language", "de")])
                .body("fourth"),
        ],
    ),
    case(
        "§4.4 only unsafe methods invalidate (documented): a GET whose response names the URL \
         in Content-Location leaves it stored",
        &[
            ok(FRESH, "one"),
            ok(
                &[
                    ("cache-control", "no-store"),
                    ("content-location", "{case}"),
                ],
                "other",
            ),
            ok(FRESH, "two"),
        ],
        &[
            get(200, 1),
            get(200, 2).at("/b").body("other"),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    case(
        "§4.4 only unsafe methods invalidate (documented): a HEAD that reaches the origin \
         leaves the GET response stored",
        &[
            ok(FRESH_V1, "one"),
            ok(FRESH_V1, "one"),
            ok(FRESH_V1, "two"),
        ],
        &[
            get(200, 1),
            head(200, 2)
                .with(&[("cache-control", "no-cache")])
                .sent(&[is(":method", "HEAD")]),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    case(
        "RFC 9110 §9.3.3 a POST's response without Content-Location is not served to a GET",
        &[ok(FRESH, "posted"), ok(FRESH, "got")],
        &[
            step("POST", 200, 1),
            get(200, 2).body("got").sent(&[is(":method", "GET")]),
        ],
    ),
    // RFC 9110 §9.3.2 HEAD.
    case(
        "§4, RFC 9110 §9.3.2 HEAD is answered from a stored GET response: the same fields, no \
         body",
        &[ok(
            &[
                ("cache-control", "max-age=3600"),
                ("etag", "\"v1\""),
                ("content-type", "text/plain"),
                ("x-custom", "a"),
            ],
            DIGITS,
        )],
        &[
            get(200, 1).body(DIGITS),
            head(200, 1).body("").expect(&[
                HIT,
                is("content-length", "10"),
                is("etag", "\"v1\""),
                is("content-type", "text/plain"),
                is("x-custom", "a"),
            ]),
        ],
    ),
    case(
        "RFC 9110 §9.3.2 a HEAD miss is forwarded as HEAD and stores no body for GET",
        &[ok(FRESH, "one"), ok(FRESH, "two")],
        &[
            head(200, 1).body("").sent(&[is(":method", "HEAD")]),
            get(200, 2).body("two").sent(&[is(":method", "GET")]),
            get(200, 2).body("two").expect(&[HIT]),
        ],
    ),
    case(
        "§4.3.1, RFC 9110 §9.3.2 HEAD on a stale response: validated, answered without a body",
        &[
            ok(STALE_V1, DIGITS),
            if_none_match("\"v1\"", REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            head(200, 2)
                .body("")
                .sent(&[SENT_V1])
                .expect(&[absent_or("content-length", "10"), is("etag", "\"v1\"")]),
            get(200, 2).body(DIGITS).expect(&[HIT]),
        ],
    ),
    // RFC 9110 §14 Ranges of a stored response.
    case(
        "RFC 9110 §14.2 Range bytes=0-3 on a stored 200: 206 from the cache",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1).body(DIGITS),
            get(206, 1)
                .with(&[("range", "bytes=0-3")])
                .body("0123")
                .expect(&[
                    is("content-range", "bytes 0-3/10"),
                    is("content-length", "4"),
                    is("etag", "\"r1\""),
                ]),
        ],
    ),
    case(
        "RFC 9110 §14.1.1 a suffix range",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(206, 1)
                .with(&[("range", "bytes=-3")])
                .body("789")
                .expect(&[is("content-range", "bytes 7-9/10")]),
        ],
    ),
    case(
        "RFC 9110 §14.1.1 an open-ended range",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(206, 1)
                .with(&[("range", "bytes=7-")])
                .body("789")
                .expect(&[is("content-range", "bytes 7-9/10")]),
        ],
    ),
    case(
        "RFC 9110 §14.1.1 a last position past the end is taken as the end",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(206, 1)
                .with(&[("range", "bytes=5-100")])
                .body("56789")
                .expect(&[is("content-range", "bytes 5-9/10")]),
        ],
    ),
    case(
        "RFC 9110 §14.6, §15.3.7.2 several ranges: multipart/byteranges, parts in the order \
         asked",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(206, 1)
                .with(&[("range", "bytes=6-7,0-1")])
                .parts(&[
                    "content-range: bytes 6-7/10",
                    "67",
                    "content-range: bytes 0-1/10",
                    "01",
                ])
                .expect(&[has("content-type", "multipart/byteranges")]),
        ],
    ),
    case(
        "RFC 9110 §15.5.17 an unsatisfiable range: 416 with Content-Range bytes */10",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(416, 1)
                .with(&[("range", "bytes=20-30")])
                .expect(&[is("content-range", "bytes */10")]),
        ],
    ),
    case(
        "RFC 9110 §13.1.5 If-Range with the stored ETag: 206",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(206, 1)
                .with(&[("range", "bytes=0-3"), ("if-range", "\"r1\"")])
                .body("0123"),
        ],
    ),
    case(
        "RFC 9110 §13.1.5 If-Range with another ETag: the whole 200",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("range", "bytes=0-3"), ("if-range", "\"r0\"")])
                .body(DIGITS)
                .expect(&[absent("content-range")]),
        ],
    ),
    case(
        "RFC 9110 §13.1.5 If-Range compares strongly: a weak ETag never matches",
        &[ok(
            &[("cache-control", "max-age=3600"), ("etag", "W/\"r1\"")],
            DIGITS,
        )],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("range", "bytes=0-3"), ("if-range", "W/\"r1\"")])
                .body(DIGITS),
        ],
    ),
    case(
        "RFC 9110 §13.1.5 If-Range with the stored Last-Modified (strong: a year before Date): \
         206",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(206, 1)
                .with(&[("range", "bytes=0-3"), ("if-range", LAST_MODIFIED)])
                .body("0123"),
        ],
    ),
    case(
        "RFC 9110 §13.1.5 If-Range with another date: the whole 200",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("range", "bytes=0-3"), ("if-range", BEFORE_LAST_MODIFIED)])
                .body(DIGITS),
        ],
    ),
    case(
        "§3.3 a Range on a miss is forwarded; the origin's 206 reaches the client and cannot \
         answer a request for the whole",
        &[
            answer(
                206,
                &[
                    ("cache-control", "max-age=3600"),
                    ("content-range", "bytes 0-3/10"),
                    ("etag", "\"r1\""),
                ],
                "0123",
            ),
            ok(RANGED, DIGITS),
        ],
        &[
            get(206, 1)
                .with(&[("range", "bytes=0-3")])
                .body("0123")
                .sent(&[is("range", "bytes=0-3")])
                .expect(&[is("content-range", "bytes 0-3/10")]),
            get(200, 2).body(DIGITS).sent(&[absent("range")]),
            get(206, 2)
                .with(&[("range", "bytes=2-3")])
                .body("23")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§3.3 a stored part answers a range wholly within it, without the origin",
        &[answer(
            206,
            &[
                ("cache-control", "max-age=3600"),
                ("content-range", "bytes 2-7/10"),
                ("etag", "\"r1\""),
                ("content-type", "text/plain"),
            ],
            "234567",
        )],
        &[
            get(206, 1).with(&[("range", "bytes=2-7")]).body("234567"),
            get(206, 1)
                .with(&[("range", "bytes=3-5")])
                .body("345")
                .expect(&[
                    HIT,
                    is("content-range", "bytes 3-5/10"),
                    is("etag", "\"r1\""),
                ]),
            get(206, 1)
                .with(&[("range", "bytes=2-7")])
                .body("234567")
                .expect(&[HIT, absent("tower-edge-parts")]),
        ],
    ),
    case(
        "§3.3 a range not wholly within the stored part goes to the origin",
        &[
            answer(
                206,
                &[
                    ("cache-control", "max-age=3600"),
                    ("content-range", "bytes 0-3/10"),
                    ("etag", "\"r1\""),
                ],
                "0123",
            ),
            answer(
                206,
                &[
                    ("cache-control", "max-age=3600"),
                    ("content-range", "bytes 3-5/10"),
                    ("etag", "\"r1\""),
                ],
                "345",
            ),
        ],
        &[
            get(206, 1).with(&[("range", "bytes=0-3")]),
            get(206, 2)
                .with(&[("range", "bytes=3-5")])
                .body("345")
                .sent(&[is("range", "bytes=3-5")]),
            // Combined (§3.4): 0-5 is now held.
            get(206, 2)
                .with(&[("range", "bytes=1-5")])
                .body("12345")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§3.4 parts with the same strong ETag that cover the representation answer a GET for \
         the whole, as a 200",
        &[
            answer(
                206,
                &[
                    ("cache-control", "max-age=3600"),
                    ("content-range", "bytes 0-4/10"),
                    ("etag", "\"r1\""),
                    ("content-type", "text/plain"),
                ],
                "01234",
            ),
            answer(
                206,
                &[
                    ("cache-control", "max-age=3600"),
                    ("content-range", "bytes 5-9/10"),
                    ("etag", "\"r1\""),
                    ("content-type", "text/plain"),
                ],
                "56789",
            ),
        ],
        &[
            get(206, 1).with(&[("range", "bytes=0-4")]),
            get(206, 2).with(&[("range", "bytes=5-")]),
            get(200, 2).body(DIGITS).expect(&[
                HIT,
                is("content-length", "10"),
                absent("content-range"),
                is("content-type", "text/plain"),
            ]),
        ],
    ),
    case(
        "§3.4 parts whose ETags differ are not combined",
        &[
            answer(
                206,
                &[
                    ("cache-control", "max-age=3600"),
                    ("content-range", "bytes 0-4/10"),
                    ("etag", "\"r1\""),
                ],
                "01234",
            ),
            answer(
                206,
                &[
                    ("cache-control", "max-age=3600"),
                    ("content-range", "bytes 5-9/10"),
                    ("etag", "\"r2\""),
                ],
                "ABCDE",
            ),
            ok(RANGED, DIGITS),
        ],
        &[
            get(206, 1).with(&[("range", "bytes=0-4")]),
            get(206, 2).with(&[("range", "bytes=5-")]),
            get(200, 3).body(DIGITS).expect(&[MISS]),
        ],
    ),
    case(
        "§3.3, §5.2.2.7 a private part is not stored",
        &[answer(
            206,
            &[
                ("cache-control", "private, max-age=3600"),
                ("content-range", "bytes 0-3/10"),
            ],
            "0123",
        )],
        &[
            get(206, 1)
                .with(&[("range", "bytes=0-3")])
                .expect(&[has("cache-status", "detail=private")]),
            get(206, 2).with(&[("range", "bytes=0-3")]),
        ],
    ),
    case(
        "§3.3 a multipart/byteranges answer is passed on and not stored",
        &[answer(
            206,
            &[
                ("cache-control", "max-age=3600"),
                ("content-type", "multipart/byteranges; boundary=xyz"),
            ],
            "--xyz\r\nContent-Range: bytes 0-0/10\r\n\r\n0\r\n--xyz--\r\n",
        )],
        &[
            get(206, 1)
                .with(&[("range", "bytes=0-0,9-9")])
                .expect(&[has("cache-status", "detail=multipart")]),
            get(206, 2).with(&[("range", "bytes=0-0,9-9")]),
        ],
    ),
    case(
        "RFC 9110 §13.1.5 If-Range is forwarded with the Range on a miss",
        &[answer(
            206,
            &[("content-range", "bytes 0-3/10"), ("etag", "\"r1\"")],
            "0123",
        )],
        &[get(206, 1)
            .with(&[("range", "bytes=0-3"), ("if-range", "\"r1\"")])
            .body("0123")
            .sent(&[is("range", "bytes=0-3"), is("if-range", "\"r1\"")])],
    ),
    case(
        "RFC 9110 §14.2 a Range on a stored 404 is ignored",
        &[answer(404, FRESH, "not found here")],
        &[
            get(404, 1),
            get(404, 1)
                .with(&[("range", "bytes=0-3")])
                .body("not found here"),
        ],
    ),
    case(
        "RFC 9110 §14.2 a Range on HEAD is ignored",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            head(200, 1)
                .with(&[("range", "bytes=0-3")])
                .body("")
                .expect(&[absent("content-range")]),
        ],
    ),
    case(
        "RFC 9110 §14.1 a range unit the cache does not know is ignored",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(200, 1).with(&[("range", "items=0-3")]).body(DIGITS),
        ],
    ),
    case(
        "RFC 9110 §13.2.2 preconditions come before Range: a matching If-None-Match gives 304",
        &[ok(RANGED, DIGITS)],
        &[
            get(200, 1),
            get(304, 1)
                .with(&[("range", "bytes=0-3"), ("if-none-match", "\"r1\"")])
                .body(""),
        ],
    ),
    // §4.1 Vary.
    case(
        "§4.1 each Accept-Language value gets a stored variant of its own",
        &[ok(VARY_LANGUAGE, "first"), ok(VARY_LANGUAGE, "second")],
        &[
            get(200, 1).with(&[("accept-language", "fr")]).body("first"),
            get(200, 2)
                .with(&[("accept-language", "de")])
                .body("second")
                .sent(&[is("accept-language", "de")]),
            get(200, 2)
                .with(&[("accept-language", "fr")])
                .body("first")
                .expect(&[HIT]),
            get(200, 2)
                .with(&[("accept-language", "de")])
                .body("second")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§4.1 Vary: * is never served from the cache",
        &[
            ok(&[("cache-control", "max-age=3600"), ("vary", "*")], "first"),
            ok(
                &[("cache-control", "max-age=3600"), ("vary", "*")],
                "second",
            ),
            ok(&[("cache-control", "max-age=3600"), ("vary", "*")], "third"),
        ],
        &[
            get(200, 1).body("first"),
            get(200, 2).body("second"),
            get(200, 3).body("third"),
        ],
    ),
    case(
        "§4.1 Accept-Language values that differ in case and whitespace share a variant",
        &[ok(VARY_LANGUAGE, "first"), ok(VARY_LANGUAGE, "second")],
        &[
            get(200, 1).with(&[("accept-language", "fr-CH, fr;q=0.9")]),
            get(200, 1)
                .with(&[("accept-language", "FR-ch,fr; q=0.9")])
                .body("first")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§4.1 field lines are combined: two Accept-Language lines match one combined line",
        &[ok(VARY_LANGUAGE, "first"), ok(VARY_LANGUAGE, "second")],
        &[
            get(200, 1).with(&[("accept-language", "fr"), ("accept-language", "de")]),
            get(200, 1)
                .with(&[("accept-language", "fr, de")])
                .body("first")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§4.1 with two Vary fields, a different value of either is another variant",
        &[
            ok(
                &[
                    ("cache-control", "max-age=3600"),
                    ("vary", "accept-language, x-device"),
                ],
                "first",
            ),
            ok(
                &[
                    ("cache-control", "max-age=3600"),
                    ("vary", "accept-language, x-device"),
                ],
                "second",
            ),
        ],
        &[
            get(200, 1)
                .with(&[("accept-language", "fr"), ("x-device", "mobile")])
                .body("first"),
            get(200, 2)
                .with(&[("accept-language", "fr"), ("x-device", "desktop")])
                .body("second"),
            get(200, 2)
                .with(&[("accept-language", "fr"), ("x-device", "mobile")])
                .body("first"),
        ],
    ),
    case(
        "§4.1 a request without the field does not match a variant stored for a value, and \
         gets its own",
        &[ok(VARY_LANGUAGE, "first"), ok(VARY_LANGUAGE, "second")],
        &[
            get(200, 1).with(&[("accept-language", "fr")]).body("first"),
            get(200, 2).body("second"),
            get(200, 2).body("second").expect(&[HIT]),
            get(200, 2)
                .with(&[("accept-language", "fr")])
                .body("first")
                .expect(&[HIT]),
        ],
    ),
    case(
        "§4.1 Vary: Accept-Encoding: a gzip variant is not served to a client that accepts only \
         identity",
        &[
            ok(
                &[
                    ("cache-control", "max-age=3600"),
                    ("vary", "accept-encoding"),
                    ("content-encoding", "gzip"),
                ],
                "gzipped",
            ),
            ok(
                &[
                    ("cache-control", "max-age=3600"),
                    ("vary", "accept-encoding"),
                ],
                "plain",
            ),
        ],
        &[
            get(200, 1)
                .with(&[("accept-encoding", "gzip")])
                .body("gzipped"),
            get(200, 2)
                .with(&[("accept-encoding", "identity")])
                .body("plain")
                .expect(&[absent("content-encoding")]),
        ],
    ),
    // RFC 9110 §15.2 Informational responses.
    case(
        "RFC 9110 §15.2 a 103 before the 200: the client gets the 200, which is stored without \
         the 103's fields",
        &[Answer::Interim(
            &[(103, &[("link", "</style.css>; rel=preload")])],
            reply(200, FRESH, "final"),
        )],
        &[
            get(200, 1).body("final").expect(&[absent("link")]),
            get(200, 1).body("final").expect(&[HIT, absent("link")]),
        ],
    ),
    case(
        "RFC 9110 §15.2 two interim responses (100, 103) before the 200",
        &[Answer::Interim(
            &[(100, &[]), (103, &[("link", "</app.js>; rel=preload")])],
            reply(200, FRESH, "final"),
        )],
        &[
            get(200, 1).body("final"),
            get(200, 1).body("final").expect(&[HIT]),
        ],
    ),
    case(
        "RFC 9110 §15.2, §4.3.4 a 103 before the 304 of a revalidation",
        &[
            ok(STALE_V1, "one"),
            Answer::Interim(
                &[(103, &[("link", "</style.css>; rel=preload")])],
                reply(304, REFRESH, ""),
            ),
        ],
        &[
            get(200, 1),
            get(200, 2).body("one").sent(&[SENT_V1]),
            get(200, 2).body("one").expect(&[HIT]),
        ],
    ),
    // §5.2.1.7 only-if-cached.
    case(
        "§5.2.1.7 only-if-cached with nothing stored: 504, and the origin is never asked",
        &[ok(FRESH, "one")],
        &[
            get(504, 0).with(&[("cache-control", "only-if-cached")]),
            get(200, 1).body("one").sent(&[absent("cache-control")]),
        ],
    ),
    case(
        "§5.2.1.7 only-if-cached with a fresh stored response: the stored response",
        &[ok(FRESH, "one")],
        &[
            get(200, 1),
            get(200, 1)
                .with(&[("cache-control", "only-if-cached")])
                .body("one"),
        ],
    ),
    case(
        "§5.2.1.7 only-if-cached with only another variant stored: 504",
        &[ok(VARY_LANGUAGE, "first")],
        &[
            get(200, 1).with(&[("accept-language", "fr")]),
            get(504, 1).with(&[
                ("accept-language", "de"),
                ("cache-control", "only-if-cached"),
            ]),
        ],
    ),
    case(
        "§5.2.1.7 only-if-cached with a matching If-None-Match: 304 from the cache",
        &[ok(FRESH_V1, "one")],
        &[
            get(200, 1),
            get(304, 1).with(&[
                ("cache-control", "only-if-cached"),
                ("if-none-match", "\"v1\""),
            ]),
        ],
    ),
    // RFC 9211 Cache-Status.
    case(
        "RFC 9211 §2.2, §2.5 a stored miss says fwd=miss and stored; §2.1, §2.3 the hit says \
         hit with a ttl and no fwd",
        &[ok(FRESH, "one")],
        &[
            get(200, 1).expect(&[MISS, has("cache-status", "stored")]),
            get(200, 1).expect(&[
                HIT,
                has("cache-status", "ttl="),
                lacks("cache-status", "fwd="),
            ]),
        ],
    ),
    case(
        "RFC 9211 §2.5 a response that is not stored does not say stored",
        &[ok(&[("cache-control", "no-store")], "one")],
        &[
            get(200, 1).expect(&[MISS, lacks("cache-status", "stored")]),
            get(200, 2),
        ],
    ),
    case(
        "RFC 9211 §2.1 a 304 answered from the cache says hit",
        &[ok(FRESH_V1, "one")],
        &[
            get(200, 1),
            get(304, 1)
                .with(&[("if-none-match", "\"v1\"")])
                .expect(&[HIT]),
        ],
    ),
    // §4.2.2 Heuristic freshness, with the proxy's heuristic on.
    case(
        "§4.2.2 with heuristics on, a 200 with Last-Modified and no explicit freshness is reused",
        &[ok(&[("last-modified", LAST_MODIFIED)], "one")],
        &[get(200, 1), get(200, 1).body("one").expect(&[HIT])],
    )
    .on(Config::Heuristic),
    case(
        "§4.2.2, RFC 9110 §15.1 with heuristics on, a 404 (heuristically cacheable) is reused",
        &[answer(404, &[("last-modified", LAST_MODIFIED)], "none")],
        &[get(404, 1), get(404, 1).body("none").expect(&[HIT])],
    )
    .on(Config::Heuristic),
    case(
        "§4.2.2, RFC 9110 §15.1 with heuristics on, a 201 (not heuristically cacheable) is not",
        &[answer(201, &[("last-modified", LAST_MODIFIED)], "made")],
        &[get(201, 1), get(201, 2)],
    )
    .on(Config::Heuristic),
    case(
        "§4.2.2 no heuristics when there is explicit freshness: max-age=0 is stale",
        &[
            ok(
                &[
                    ("cache-control", "max-age=0"),
                    ("last-modified", LAST_MODIFIED),
                ],
                "one",
            ),
            if_modified_since(LAST_MODIFIED, REFRESH, reply(200, FRESH, "two")),
        ],
        &[
            get(200, 1),
            get(200, 2)
                .body("one")
                .sent(&[is("if-modified-since", LAST_MODIFIED)]),
        ],
    )
    .on(Config::Heuristic),
    case(
        "§4.2.2 no heuristics when there is explicit freshness: Expires in the past is stale",
        &[
            ok(
                &[("expires", PAST), ("last-modified", LAST_MODIFIED)],
                "one",
            ),
            ok(FRESH, "two"),
        ],
        &[get(200, 1), get(200, 2).body("two")],
    )
    .on(Config::Heuristic),
];

/// A request as the origin received it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    /// Lowercase names, in order.
    fields: Vec<(String, String)>,
}

impl Seen {
    /// The field's lines joined with `, `; `:method` and `:target` for the request line.
    fn field(&self, name: &str) -> Option<String> {
        match name {
            ":method" => return Some(self.method.clone()),
            ":target" => return Some(self.target.clone()),
            _ => {}
        }
        let values: Vec<&str> = self
            .fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The index of the case whose path this request is for.
    fn case(&self) -> Option<usize> {
        let rest = self.target.strip_prefix("/x/")?;
        let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
        digits.parse().ok().filter(|index| *index < CASES.len())
    }
}

/// The scripted origin: what it received for each case, and a tick on every request.
struct Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<Seen>>>>,
    ticks: watch::Receiver<usize>,
}

impl Origin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let seen = Arc::new(Mutex::new(vec![Vec::new(); CASES.len()]));
        let (tick, ticks) = watch::channel(0);
        let tick = Arc::new(tick);
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&log), Arc::clone(&tick)));
            }
        });
        Self { addr, seen, ticks }
    }

    fn calls(&self, case: usize) -> usize {
        self.seen.lock().expect("origin log")[case].len()
    }

    fn seen_since(&self, case: usize, from: usize) -> Vec<Seen> {
        self.seen.lock().expect("origin log")[case][from..].to_vec()
    }

    /// Waits until the origin has had `calls` requests for `case`, or `deadline` passes.
    async fn wait_for(&self, case: usize, calls: usize, deadline: Instant) {
        let mut ticks = self.ticks.clone();
        loop {
            // Marked seen before counting: a request after the count wakes `changed`.
            ticks.borrow_and_update();
            if self.calls(case) >= calls {
                return;
            }
            match tokio::time::timeout_at(deadline, ticks.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }
}

/// One connection to the origin: read a request, log it, answer by the case's script, close.
async fn serve(
    mut stream: TcpStream,
    log: Arc<Mutex<Vec<Vec<Seen>>>>,
    tick: Arc<watch::Sender<usize>>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let Some(case) = request.case() else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    };
    let call = {
        let mut log = log.lock().expect("origin log");
        log[case].push(request.clone());
        log[case].len() - 1
    };
    tick.send_modify(|n| *n += 1);
    let script = CASES[case].origin;
    let answer = &script[call.min(script.len() - 1)];
    if let Some(bytes) = answer.render(&request, &format!("/x/{case}")) {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    }
}

/// Reads a request head (and a body of `Content-Length` bytes, discarded).
async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    const MAX_HEAD: usize = 64 * 1024;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let fields: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let request = Seen {
        method,
        target,
        fields,
    };
    let length: usize = request
        .field("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_HEAD);
    // The body is read to its end even though it is not used: closing a socket with unread
    // bytes resets the connection, and the proxy could lose the answer.
    let chunked = request
        .field("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = buf[end + 4..].to_vec();
    loop {
        let done = if chunked {
            body.ends_with(b"0\r\n\r\n")
        } else {
            body.len() >= length
        };
        if done || body.len() > MAX_HEAD {
            break;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(request)
}

impl Answer {
    /// The bytes to send for `request`, or `None` to close without answering.
    fn render(&self, request: &Seen, case_path: &str) -> Option<Vec<u8>> {
        let head_only = request.method == "HEAD";
        match self {
            Self::Reply(reply) => Some(reply.render(head_only, case_path)),
            Self::NotModifiedWhen {
                field,
                value,
                fields,
                otherwise,
            } => {
                let matches = request.field(field).is_some_and(|v| v.contains(value));
                let chosen = if matches {
                    &reply(304, fields, "")
                } else {
                    otherwise
                };
                Some(chosen.render(head_only, case_path))
            }
            Self::Interim(interim, last) => {
                let mut bytes = Vec::new();
                for (status, fields) in *interim {
                    let mut text = status_line(*status);
                    push_fields(&mut text, fields, case_path);
                    text.push_str("\r\n");
                    bytes.extend_from_slice(text.as_bytes());
                }
                bytes.extend_from_slice(&last.render(head_only, case_path));
                Some(bytes)
            }
            Self::Close => None,
        }
    }
}

impl Reply {
    /// The status line, the scripted fields, `Content-Length` (unless the status has no
    /// content), `Connection: close`, and the body unless the request was HEAD.
    fn render(&self, head_only: bool, case_path: &str) -> Vec<u8> {
        let mut text = status_line(self.status);
        push_fields(&mut text, self.fields, case_path);
        let no_content = matches!(self.status, 204 | 304);
        if !no_content {
            text.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        text.push_str("connection: close\r\n\r\n");
        if !no_content && !head_only {
            text.push_str(self.body);
        }
        text.into_bytes()
    }
}

fn status_line(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Other");
    format!("HTTP/1.1 {status} {reason}\r\n")
}

fn push_fields(text: &mut String, fields: Fields, case_path: &str) {
    for (name, value) in fields {
        let value = value.replace(CASE_PATH, case_path);
        text.push_str(&format!("{name}: {value}\r\n"));
    }
}

/// What the client got.
#[derive(Debug)]
struct Answered {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

/// Sends `step`'s request to the proxy at `addr` on a new connection and reads the answer.
async fn exchange(addr: SocketAddr, path: &str, step: &Step) -> Result<Answered, String> {
    let method = Method::from_bytes(step.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    for (name, value) in step.fields {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("request: {e}"))?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to the proxy: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("no response: {e}"))?;
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answered {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// The field's lines joined with `, `.
fn field(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("<not text>"))
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

impl Expect {
    /// What is wrong, if anything, given a way to read a field.
    fn problem(&self, read: impl Fn(&str) -> Option<String>) -> Option<String> {
        match *self {
            Self::Is(name, want) => match read(name) {
                Some(got) if got == want => None,
                got => Some(format!("{name}: expected {want:?}, got {got:?}")),
            },
            Self::Has(name, part) => match read(name) {
                Some(got) if got.contains(part) => None,
                got => Some(format!("{name}: expected to contain {part:?}, got {got:?}")),
            },
            Self::Lacks(name, part) => match read(name) {
                Some(got) if got.contains(part) => {
                    Some(format!("{name}: expected no {part:?}, got {got:?}"))
                }
                _ => None,
            },
            Self::Absent(name) => {
                read(name).map(|got| format!("{name}: expected none, got {got:?}"))
            }
            Self::Present(name) => match read(name) {
                Some(_) => None,
                None => Some(format!("{name}: expected, missing")),
            },
            Self::AtLeast(name, least) => match read(name) {
                Some(got) if got.trim().parse::<u64>().is_ok_and(|n| n >= least) => None,
                got => Some(format!("{name}: expected at least {least}, got {got:?}")),
            },
            Self::AbsentOr(name, want) => match read(name) {
                Some(got) if got != want => {
                    Some(format!("{name}: expected none or {want:?}, got {got:?}"))
                }
                _ => None,
            },
        }
    }
}

/// Everything about `answered` (and the origin's `calls` and the requests it got in this
/// step) that differs from what `step` expects.
fn problems(step: &Step, answered: &Answered, calls: usize, seen: &[Seen]) -> Vec<String> {
    let mut problems = Vec::new();
    if answered.status != step.status {
        problems.push(format!(
            "status {} (expected {})",
            answered.status, step.status
        ));
    }
    if calls != step.calls {
        problems.push(format!(
            "{calls} origin call(s) so far (expected {})",
            step.calls
        ));
    }
    problems.extend(
        step.expect
            .iter()
            .filter_map(|e| e.problem(|name| field(&answered.headers, name))),
    );
    if let Some(body) = step.body
        && answered.body != body.as_bytes()
    {
        problems.push(format!(
            "body {:?} (expected {body:?})",
            String::from_utf8_lossy(&answered.body)
        ));
    }
    if !step.parts.is_empty() {
        let text = String::from_utf8_lossy(&answered.body).to_ascii_lowercase();
        let mut from = 0;
        for part in step.parts {
            match text[from..].find(&part.to_ascii_lowercase()) {
                Some(at) => from += at + part.len(),
                None => {
                    problems.push(format!("body lacks {part:?} in order: {text:?}"));
                    break;
                }
            }
        }
    }
    if !step.sent.is_empty() {
        match seen.last() {
            None => problems.push("the origin received nothing in this step".to_owned()),
            Some(request) => problems.extend(
                step.sent
                    .iter()
                    .filter_map(|e| e.problem(|name| request.field(name)))
                    .map(|p| format!("origin received {p}")),
            ),
        }
    }
    problems
}

/// Runs one case's steps in order; the first step that does not hold ends it.
async fn run(origin: &Origin, proxy: SocketAddr, index: usize, case: &Case) -> Result<(), String> {
    for (n, step) in case.steps.iter().enumerate() {
        let path = format!("/x/{index}{}", step.path);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let before = origin.calls(index);
            let outcome = tokio::time::timeout_at(deadline, exchange(proxy, &path, step)).await;
            let problems = match outcome {
                Err(_) => vec!["no answer in time".to_owned()],
                Ok(Err(error)) => vec![error],
                Ok(Ok(answered)) => {
                    if step.settles || step.eventually {
                        origin.wait_for(index, step.calls, deadline).await;
                    }
                    let seen = origin.seen_since(index, before);
                    problems(step, &answered, origin.calls(index), &seen)
                }
            };
            if problems.is_empty() {
                break;
            }
            if !step.eventually || Instant::now() >= deadline {
                return Err(format!(
                    "step {} ({} {path}): {}",
                    n + 1,
                    step.method,
                    problems.join("; ")
                ));
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_follows_rfc_9111_through_multi_step_exchanges() {
    assert!(CASES.len() >= 90, "{} cases", CASES.len());
    let origin = Origin::start().await;
    let upstream = format!("http://{}", origin.addr);
    let config = || ProxyConfig::new(&upstream).expect("valid upstream");
    let default = TestServer::start(proxy(config())).await;
    let stale_if_error =
        TestServer::start(proxy(config().stale_if_error(Duration::from_secs(60)))).await;
    let heuristic = TestServer::start(proxy(config().heuristic(true))).await;

    let mut failures = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let proxy = match case.config {
            Config::Default => default.addr(),
            Config::StaleIfError => stale_if_error.addr(),
            Config::Heuristic => heuristic.addr(),
        };
        if let Err(problem) = run(&origin, proxy, index, case).await {
            failures.push(format!("{}: {problem}", case.section));
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
