//! The `#[memoize]` attribute of `tower-edge-store`: caches an async function's result in a
//! `Memo`, keyed by the function and its arguments.
//!
//! Use it through `tower_edge_store::memo::memoize` (feature `macros`), where it is documented
//! with examples; this crate holds only the code generation.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    Expr, ExprLit, FnArg, Ident, ItemFn, Lit, LitStr, Meta, Pat, ReturnType, Token, Type,
    parse::Parser, punctuated::Punctuated, spanned::Spanned,
};

/// Caches an async function's result in a `Memo`, keyed by the function's path and its
/// arguments. See `tower_edge_store::memo::memoize` for the options and examples.
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// What the attribute says.
struct Options {
    memo: Expr,
    ttl: TokenStream2,
    name: Option<LitStr>,
    skip: Vec<Ident>,
    refresh: bool,
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = parse_options(attr)?;
    let function: ItemFn = syn::parse2(item)?;
    generate(&options, &function)
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let (mut memo, mut ttl, mut name, mut skip, mut refresh) =
        (None, None, None, Vec::new(), false);
    for meta in metas {
        let key = meta
            .path()
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        match (key.as_str(), meta) {
            ("memo", Meta::NameValue(nv)) => memo = Some(nv.value),
            ("ttl", Meta::NameValue(nv)) => ttl = Some(ttl_tokens(&nv.value)?),
            ("name", Meta::NameValue(nv)) => match nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) if !s.value().is_empty() => {
                    name = Some(s);
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "`name` takes a non-empty string: `name = \"reports::total\"`",
                    ));
                }
            },
            ("skip", Meta::List(list)) => {
                let idents =
                    Punctuated::<Ident, Token![,]>::parse_terminated.parse2(list.tokens)?;
                skip.extend(idents);
            }
            ("refresh", Meta::Path(_)) => refresh = true,
            (_, meta) => {
                return Err(syn::Error::new(
                    meta.span(),
                    "unknown or malformed option; `#[memoize]` takes `memo = <expr>`, \
                     `ttl = \"60s\"`, and optionally `name = \"..\"`, `skip(arg, ..)` and `refresh`",
                ));
            }
        }
    }
    let memo = memo.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "`#[memoize]` needs `memo = <expr>`: the `Memo` to cache in, e.g. a static",
        )
    })?;
    let ttl = ttl.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "`#[memoize]` needs `ttl`: `ttl = \"60s\"`, `ttl = 60` (seconds), \
             `ttl = \"forever\"` or a `Duration` expression",
        )
    })?;
    Ok(Options {
        memo,
        ttl,
        name,
        skip,
        refresh,
    })
}

/// `"90s"`, `"1h30m"`, `"250ms"`, `"forever"`, `60` (seconds), or any other expression, taken
/// as a `Duration`.
fn ttl_tokens(value: &Expr) -> syn::Result<TokenStream2> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            let text = s.value();
            if text == "forever" {
                return Ok(quote!(::tower_edge_store::memo::__private::FOREVER));
            }
            let millis = parse_duration_millis(&text).map_err(|why| {
                syn::Error::new(
                    s.span(),
                    format!("ttl {text:?}: {why}; write e.g. \"90s\", \"1h30m\", \"250ms\" or \"forever\""),
                )
            })?;
            Ok(quote!(::core::time::Duration::from_millis(#millis)))
        }
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            let secs: u64 = i.base10_parse()?;
            Ok(quote!(::core::time::Duration::from_secs(#secs)))
        }
        other => Ok(quote!({
            let ttl: ::core::time::Duration = #other;
            ttl
        })),
    }
}

/// Milliseconds in a duration written as numbers with units (`d`, `h`, `m`, `s`, `ms`).
fn parse_duration_millis(text: &str) -> Result<u64, &'static str> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty");
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err("each part starts with a number");
        }
        let n: u64 = rest[..digits].parse().map_err(|_| "number too large")?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..letters] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err("each number needs a unit (d, h, m, s, ms)"),
            _ => return Err("unknown unit (d, h, m, s, ms)"),
        };
        rest = &rest[letters..];
        total = n
            .checked_mul(unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or("too long")?;
    }
    Ok(total)
}

/// Whether the function's declared return type is a `Result` (by its last path segment).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match ty.as_ref() {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

fn generate(options: &Options, function: &ItemFn) -> syn::Result<TokenStream2> {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "`#[memoize]` needs an `async fn`: the store is asynchronous",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            "`#[memoize]` cannot take variadic arguments",
        ));
    }

    // Each argument: its name, its type, and whether it goes into the key.
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    "`#[memoize]` applies to free functions, not methods: move the body to a \
                     function that takes what it needs as arguments",
                ));
            }
            FnArg::Typed(typed) => match typed.pat.as_ref() {
                Pat::Ident(ident) if ident.subpat.is_none() && ident.by_ref.is_none() => {
                    args.push((ident.ident.clone(), typed.ty.as_ref().clone()));
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "`#[memoize]` needs a plain name for each argument (it goes into the key)",
                    ));
                }
            },
        }
    }
    for skipped in &options.skip {
        if !args.iter().any(|(name, _)| name == skipped) {
            return Err(syn::Error::new(
                skipped.span(),
                format!("`skip({skipped})`: the function has no argument of that name"),
            ));
        }
    }
    let keyed: Vec<_> = args
        .iter()
        .filter(|(name, _)| !options.skip.contains(name))
        .collect();
    let keyed_names: Vec<_> = keyed.iter().map(|(name, _)| name).collect();
    let keyed_types: Vec<_> = keyed.iter().map(|(_, ty)| ty).collect();
    let all_names: Vec<_> = args.iter().map(|(name, _)| name).collect();

    let vis = &function.vis;
    let attrs = &function.attrs;
    let fn_name = &sig.ident;
    let generics = &sig.generics;
    let (_, _, where_clause) = generics.split_for_impl();
    let inner_name = format_ident!("__memoized_{}", fn_name);
    let mut forget_generics = generics.clone();
    forget_generics.params.push(syn::parse_quote!(
        __St: ::tower_edge_store::CacheStore + ::core::clone::Clone
    ));
    let (forget_params, _, forget_where) = forget_generics.split_for_impl();

    // The original function, renamed, inside the new one: it keeps its signature, so `?`, early
    // returns and `impl Trait` arguments work as written.
    let mut inner_sig = sig.clone();
    inner_sig.ident = inner_name.clone();
    let inner_block = &function.block;
    // A `Memo` passed as an argument is used by the cache, maybe not by the body.
    let memo_argument = match &options.memo {
        Expr::Path(path) => path
            .path
            .get_ident()
            .filter(|ident| args.iter().any(|(name, _)| name == *ident))
            .map(|ident| quote!(let _ = &#ident;)),
        _ => None,
    };

    // The outer signature drops `mut` from the arguments (the inner function keeps it).
    let mut outer_sig = sig.clone();
    for input in &mut outer_sig.inputs {
        if let FnArg::Typed(typed) = input
            && let Pat::Ident(ident) = typed.pat.as_mut()
        {
            ident.mutability = None;
        }
    }

    let memo = &options.memo;
    let ttl = &options.ttl;
    let name = match &options.name {
        Some(name) => quote!(#name),
        None => quote!(#fn_name::NAME),
    };
    let module_name = match &options.name {
        Some(name) => quote!(#name),
        None => quote!(::core::module_path!()),
    };
    let method = if options.refresh {
        quote!(get_or_refresh)
    } else {
        quote!(get_or_compute)
    };
    let compute = if returns_result(&sig.output) {
        quote!(move || #inner_name(#(#all_names),*))
    } else {
        quote!(move || async move {
            ::core::result::Result::<_, ::core::convert::Infallible>::Ok(
                #inner_name(#(#all_names),*).await,
            )
        })
    };
    let call = quote! {
        ::tower_edge_store::memo::__private::for_function(__memo, #name)
            .#method(&__key, #ttl, #compute)
            .await
    };
    let body = if returns_result(&sig.output) {
        call
    } else {
        quote!(match #call {
            ::core::result::Result::Ok(value) => value,
            ::core::result::Result::Err(never) => match never {},
        })
    };
    let doc_forget = format!(
        "Removes what [`{fn_name}`](fn@super::{fn_name}) stored for these arguments; returns how many entries went."
    );
    let doc_forget_all = format!(
        "Removes every value [`{fn_name}`](fn@super::{fn_name}) stored, whatever its arguments, through the \
         tag its entries carry (the store's tag index, not a scan)."
    );
    let doc_key = format!(
        "The key [`{fn_name}`](fn@super::{fn_name}) stores its value under for these arguments."
    );
    let doc_module = format!(
        "Keys and invalidation of the memoized [`{fn_name}`](fn@super::{fn_name}): `forget` (Flask-Caching's \
         `delete_memoized(f, *args)`) and `forget_all` (`delete_memoized(f)`)."
    );

    Ok(quote! {
        #(#attrs)*
        #vis #outer_sig {
            #inner_sig {
                #memo_argument
                #inner_block
            }
            let ::core::option::Option::Some(__key) =
                ::tower_edge_store::memo::__private::key(#name, &(#(&#keyed_names,)*))
            else {
                // Arguments that do not serialize cannot be keyed: computed, not cached.
                return #inner_name(#(#all_names),*).await;
            };
            let __memo: &::tower_edge_store::memo::Memo<_> = &#memo;
            #body
        }

        #[doc = #doc_module]
        #[allow(unreachable_pub, clippy::needless_lifetimes)]
        #vis mod #fn_name {
            #[allow(unused_imports)]
            use super::*;

            /// The name keys of this function start with: its module path, or the `name` it was
            /// given.
            pub const NAME: &str = #module_name;

            #[doc = #doc_key]
            ///
            /// `None` when the arguments do not serialize; calls with them are not cached.
            pub fn key #generics (#(#keyed_names: &#keyed_types),*) -> ::core::option::Option<::std::string::String> #where_clause {
                ::tower_edge_store::memo::__private::key(NAME, &(#(#keyed_names,)*))
            }

            #[doc = #doc_forget]
            pub async fn forget #forget_params (
                __memo: &::tower_edge_store::memo::Memo<__St>,
                #(#keyed_names: &#keyed_types),*
            ) -> ::core::result::Result<u64, ::tower_edge_store::StoreError> #forget_where {
                match key(#(#keyed_names),*) {
                    ::core::option::Option::Some(key) => __memo.delete(&key).await,
                    ::core::option::Option::None => ::core::result::Result::Ok(0),
                }
            }

            #[doc = #doc_forget_all]
            pub async fn forget_all<__St: ::tower_edge_store::CacheStore + ::core::clone::Clone>(
                __memo: &::tower_edge_store::memo::Memo<__St>,
            ) -> ::core::result::Result<u64, ::tower_edge_store::StoreError> {
                ::tower_edge_store::memo::__private::forget_function(__memo, NAME).await
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(attr: TokenStream2, item: TokenStream2) -> String {
        match expand(attr, item) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn durations_parse_with_units_and_reject_the_rest() {
        assert_eq!(parse_duration_millis("90s"), Ok(90_000));
        assert_eq!(parse_duration_millis("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_millis("250ms"), Ok(250));
        assert_eq!(parse_duration_millis("2d"), Ok(172_800_000));
        assert_eq!(parse_duration_millis("0s"), Ok(0));
        assert!(parse_duration_millis("").is_err());
        assert!(parse_duration_millis("60").unwrap_err().contains("unit"));
        assert!(parse_duration_millis("5 minutes").is_err());
        assert!(parse_duration_millis("s").is_err());
        assert!(parse_duration_millis("99999999999999999999s").is_err());
        assert!(
            parse_duration_millis("999999999999999d")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn mistakes_get_errors_that_say_what_to_write() {
        let f = quote!(
            async fn f(a: u32) -> u32 {
                a
            }
        );
        assert!(error_of(quote!(ttl = "1m"), f.clone()).contains("needs `memo = <expr>`"));
        assert!(error_of(quote!(memo = M), f.clone()).contains("needs `ttl`"));
        assert!(error_of(quote!(memo = M, ttl = "1 minute"), f.clone()).contains("\"90s\""));
        assert!(error_of(quote!(memo = M, ttl = "1m", colour = 3), f.clone()).contains("unknown"));
        assert!(error_of(quote!(memo = M, ttl = "1m", skip(b)), f.clone()).contains("no argument"));
        assert!(error_of(quote!(memo = M, ttl = "1m", name = ""), f).contains("non-empty"));
        let sync = quote!(
            fn f(a: u32) -> u32 {
                a
            }
        );
        assert!(error_of(quote!(memo = M, ttl = "1m"), sync).contains("async fn"));
        let method = quote!(
            async fn f(&self) -> u32 {
                1
            }
        );
        assert!(error_of(quote!(memo = M, ttl = "1m"), method).contains("not methods"));
        let pattern = quote!(
            async fn f((a, b): (u32, u32)) -> u32 {
                a + b
            }
        );
        assert!(error_of(quote!(memo = M, ttl = "1m"), pattern).contains("plain name"));
    }

    #[test]
    fn the_result_shape_is_read_from_the_return_type() {
        let of = |tokens: TokenStream2| {
            returns_result(&syn::parse2::<ItemFn>(tokens).unwrap().sig.output)
        };
        assert!(of(quote!(
            async fn f() -> Result<u32, E> {
                g()
            }
        )));
        assert!(of(quote!(
            async fn f() -> std::io::Result<u32> {
                g()
            }
        )));
        assert!(!of(quote!(
            async fn f() -> u32 {
                1
            }
        )));
        assert!(!of(quote!(
            async fn f() {}
        )));
    }
}
