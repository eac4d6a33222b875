//! A stored entry, or a response that is not stored, turned into the client's answer:
//! `304`/`412` for its preconditions, `206`/`416` for its ranges, `Age` and `Cache-Status`.

use super::*;

/// The client's preconditions against the validators of a fresh 2xx response.
pub(super) fn client_precondition<St>(ctx: &Ctx<St>, parts: &response::Parts) -> Precondition {
    precondition_of(ctx, parts.status, &parts.headers)
}

/// [`client_precondition`] for a response's status and header fields.
fn precondition_of<St>(ctx: &Ctx<St>, status: StatusCode, headers: &HeaderMap) -> Precondition {
    if !status.is_success() || !ctx.asks.conditional {
        return Precondition::Proceed;
    }
    let mut validators = Validators::from_headers(headers);
    // RFC 9111 §4.3.2: a cache evaluates If-Modified-Since against the stored response's
    // Last-Modified, or, when it has none, its Date. Only for that field: If-Unmodified-Since
    // is ignored without a modification date (RFC 9110 §13.1.4).
    if validators.last_modified().is_none()
        && ctx.client.contains_key(header::IF_MODIFIED_SINCE)
        && !ctx.client.contains_key(header::IF_UNMODIFIED_SINCE)
        && let Some(date) = headers
            .get(header::DATE)
            .and_then(|v| crate::http::date::parse_http_date(v.as_bytes()))
    {
        validators = validators.with_last_modified(date);
    }
    evaluate(&ctx.method, &ctx.client, &validators)
}

/// A response that is not stored: passed through, with the client's conditionals answered.
pub(super) fn answer_uncached<St, B>(
    ctx: &Ctx<St>,
    parts: response::Parts,
    body: B,
) -> Response<CacheBody<B>> {
    match client_precondition(ctx, &parts) {
        // The origin's own 304: no content, and no length stated unless the origin stated it.
        Precondition::Proceed if parts.status == StatusCode::NOT_MODIFIED => {
            Response::from_parts(parts, CacheBody::no_content())
        }
        Precondition::Proceed => Response::from_parts(parts, CacheBody::stream(body)),
        other => short_answer(parts, other, &ctx.shared.counters.answers),
    }
}

/// 304 or 412 in place of `parts`' full response.
pub(super) fn short_answer<B>(
    mut parts: response::Parts,
    outcome: Precondition,
    counts: &crate::observe::Counts,
) -> Response<CacheBody<B>> {
    let answer = match outcome {
        Precondition::NotModified => Short::NotModified,
        Precondition::PreconditionFailed => Short::PreconditionFailed,
        Precondition::Proceed => return Response::from_parts(parts, CacheBody::empty()),
    };
    let (status, body) = answer.head(&mut parts.headers, counts);
    parts.status = status;
    let body = if status == StatusCode::NOT_MODIFIED {
        CacheBody::no_content()
    } else {
        CacheBody::full(body)
    };
    Response::from_parts(parts, body)
}

/// Builds the client's response from a stored entry.
pub(super) fn serve<St, B>(
    found: &Found,
    ctx: &Ctx<St>,
    outcome: Outcome,
) -> Response<CacheBody<B>> {
    let entry = &found.entry;
    // A revalidation answered `304` copies only the fields a 304 carries, not the whole entry.
    let precondition = precondition_of(ctx, entry.status(), entry.headers());
    if matches!(precondition, Precondition::NotModified) {
        return not_modified(found, ctx, outcome);
    }
    // A plain GET of a fresh hit: the head kept for this entry this second, if there is one
    // (see `cache::heads`).
    let kept = match outcome {
        Outcome::Hit { ttl }
            if matches!(precondition, Precondition::Proceed)
                && ctx.method == Method::GET
                && !ctx.asks.range =>
        {
            Some((found.age(ctx.now).as_secs(), ttl.as_secs()))
        }
        _ => None,
    };
    if let Some((age, ttl)) = kept
        && let Some(headers) = ctx.shared.heads.get(entry, age, ttl)
    {
        let shared = &ctx.shared;
        outcome.count(&headers, &shared.counters, &shared.config.cache_name);
        let mut res = Response::new(CacheBody::full(entry.body().clone()));
        *res.status_mut() = entry.status();
        *res.headers_mut() = headers;
        return res;
    }
    let mut res = Response::new(CacheBody::<B>::empty());
    *res.status_mut() = entry.status();
    // Room from the start for `Age`, `Cache-Status`, and the `Vary` a compression layer
    // outside adds: growing the map later would move it whole.
    let stored = entry.headers();
    let headers = res.headers_mut();
    headers.reserve(stored.len() + 3);
    for (name, value) in stored {
        headers.append(name, value.clone());
    }
    res.headers_mut()
        .insert(header::AGE, policy::seconds_value(found.age(ctx.now)));
    outcome.apply(
        res.headers_mut(),
        &ctx.shared.counters,
        &ctx.shared.config.cache_name,
    );
    if let Some((age, ttl)) = kept {
        // The full body's length, as the server would state it from the body: in the kept
        // head, a hit's server need not write it into the map again (growing a cloned map).
        // Never on a 204, which has no content to measure (RFC 9110 §8.6).
        if entry.status() != StatusCode::NO_CONTENT {
            res.headers_mut().insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(entry.body().len() as u64),
            );
        }
        ctx.shared.heads.keep(entry, age, ttl, res.headers());
    }
    let (mut parts, _) = res.into_parts();
    match precondition {
        Precondition::Proceed => {}
        other => return short_answer(parts, other, &ctx.shared.counters.answers),
    }
    if ctx.method == Method::HEAD {
        parts.headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(entry.body().len() as u64),
        );
        return Response::from_parts(parts, CacheBody::empty());
    }
    // RFC 9110 §14: ranges of the stored body, with the same code as RangeLayer.
    if ctx.asks.range && serves_ranges(parts.status, &parts.headers) {
        let validators = Validators::from_headers(&parts.headers);
        let len = entry.body().len() as u64;
        match range::evaluate(
            &ctx.method,
            &ctx.client,
            len,
            &validators,
            ctx.now,
            &RangeLimits::new(),
        ) {
            Resolution::Full => {}
            Resolution::Partial(ranges) => {
                let (parts, chunks) =
                    partial_parts(parts, entry.body(), &ranges, &ctx.shared.counters.answers);
                return Response::from_parts(parts, CacheBody::chunks(chunks));
            }
            Resolution::Unsatisfiable => {
                let (parts, body) = unsatisfiable_parts(parts, len, &ctx.shared.counters.answers);
                return Response::from_parts(parts, CacheBody::full(body));
            }
        }
    }
    Response::from_parts(parts, CacheBody::full(entry.body().clone()))
}

/// The `304` for a stored entry whose validators the client holds (RFC 9110 §15.4.5): the
/// fields a 304 carries, copied from the entry, then `Age` and `Cache-Status`, as
/// [`short_answer`] leaves them.
fn not_modified<St, B>(found: &Found, ctx: &Ctx<St>, outcome: Outcome) -> Response<CacheBody<B>> {
    let stored = found.entry.headers();
    let mut res = Response::new(CacheBody::<B>::no_content());
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    let headers = res.headers_mut();
    headers.reserve(NOT_MODIFIED_HEADERS.len() + 3);
    for name in &NOT_MODIFIED_HEADERS {
        for value in stored.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(header::AGE, policy::seconds_value(found.age(ctx.now)));
    outcome.apply(headers, &ctx.shared.counters, &ctx.shared.config.cache_name);
    ctx.shared.counters.answers.validator("304");
    res
}
