//! The `#[job]` attribute of [`wasp-guest`](https://docs.rs/wasp-guest). See its documentation;
//! this crate is an implementation detail.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Item, ItemFn, Lit, Meta, MetaNameValue, Path, ReturnType, Token, Type};

/// Turns a function into a wasp job. See `wasp_guest::job`.
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2: TokenStream2 = item.clone().into();
    match expand(attr.into(), item2.clone()) {
        Ok(tokens) => tokens.into(),
        // Keep the original function so that the rest of the crate (and IDEs) still see it.
        Err(err) => {
            let error = err.to_compile_error();
            quote!(#item2 #error).into()
        }
    }
}

/// What the attribute's arguments configure.
struct Config {
    /// The job's exported name; defaults to the function's name.
    name: Option<(String, Span)>,
    /// The path of the `wasp_guest` crate; defaults to `::wasp_guest`.
    krate: Option<Path>,
}

impl Config {
    fn parse(attr: TokenStream2) -> syn::Result<Self> {
        let mut config = Config {
            name: None,
            krate: None,
        };
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
        for meta in metas {
            let Meta::NameValue(pair) = &meta else {
                return Err(syn::Error::new_spanned(
                    &meta,
                    "expected `name = \"...\"` or `crate = \"...\"`",
                ));
            };
            let key = if pair.path.is_ident("name") {
                "name"
            } else if pair.path.is_ident("crate") {
                "crate"
            } else {
                let path = &pair.path;
                let unknown = quote!(#path).to_string().replace(' ', "");
                return Err(syn::Error::new_spanned(
                    &pair.path,
                    format!(
                        "unknown option `{unknown}`: `#[job]` takes only \
                         `name = \"...\"` and `crate = \"...\"`"
                    ),
                ));
            };
            let value = string_literal(key, &pair.value)?;
            if key == "name" {
                config.set_name(value, pair)?;
            } else {
                config.set_crate(&value, pair)?;
            }
        }
        Ok(config)
    }

    fn set_name(&mut self, name: String, pair: &MetaNameValue) -> syn::Result<()> {
        if self.name.is_some() {
            return Err(syn::Error::new_spanned(
                pair,
                "`name` is set more than once: give each option at most once",
            ));
        }
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(syn::Error::new_spanned(
                &pair.value,
                format!(
                    "invalid job name {name:?}: a job name must be non-empty and contain only \
                     ASCII letters, digits and `_`"
                ),
            ));
        }
        self.name = Some((name, pair.value.span()));
        Ok(())
    }

    fn set_crate(&mut self, path: &str, pair: &MetaNameValue) -> syn::Result<()> {
        if self.krate.is_some() {
            return Err(syn::Error::new_spanned(
                pair,
                "`crate` is set more than once: give each option at most once",
            ));
        }
        let path = syn::parse_str::<Path>(path).map_err(|_| {
            syn::Error::new_spanned(
                &pair.value,
                "`crate` must be a path, like `crate = \"my::wasp_guest\"`",
            )
        })?;
        self.krate = Some(path);
        Ok(())
    }
}

/// The value of option `key`, which must be a string literal.
fn string_literal(key: &str, expr: &Expr) -> syn::Result<String> {
    if let Expr::Lit(lit) = expr
        && let Lit::Str(s) = &lit.lit
    {
        return Ok(s.value());
    }
    Err(syn::Error::new_spanned(
        expr,
        format!("expected a string literal: `{key} = \"...\"`"),
    ))
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let config = Config::parse(attr)?;
    let function = parse_function(item)?;
    check_signature(&function)?;
    let param_types = parameter_types(&function)?;

    let ident = &function.sig.ident;
    let job_name = config
        .name
        .map(|(name, _)| name)
        .unwrap_or_else(|| ident.to_string());
    let export_name = format!("wasp_job_{job_name}");
    let krate = config
        .krate
        .map(|path| quote!(#path))
        .unwrap_or_else(|| quote!(::wasp_guest));
    let wrapper = return_wrapper(&function.sig.output, &krate);

    let arg_names: Vec<_> = (0..param_types.len())
        .map(|i| format_ident!("__wasp_arg{i}"))
        .collect();
    let call = if param_types.is_empty() {
        quote!(#wrapper(#ident()))
    } else {
        quote! {
            match __wasp::decode_args::<(#(#param_types,)*)>(&__wasp_bytes, #job_name) {
                ::core::result::Result::Ok((#(#arg_names,)*)) => #wrapper(#ident(#(#arg_names),*)),
                ::core::result::Result::Err(__wasp_buf) => return __wasp::finish(__wasp_buf),
            }
        }
    };
    let export_fn = format_ident!("__wasp_job_export_{}", job_name);

    Ok(quote! {
        #function

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code, reason = "the job export is the wasp ABI boundary")]
        #[unsafe(export_name = #export_name)]
        extern "C" fn #export_fn(ptr: u32, len: u32) -> u64 {
            use #krate::__private as __wasp;
            __wasp::install_panic_hook();
            // SAFETY: the host calls job exports with a buffer from `wasp_alloc(len)` that it
            // has filled, as the wasp ABI requires.
            let __wasp_bytes = unsafe { __wasp::take_args(ptr, len) };
            let _ = &__wasp_bytes;
            let __wasp_result = #call;
            __wasp::finish(__wasp::JobReturn::into_result_buffer(__wasp_result))
        }
    })
}

/// Parses the item the attribute is on, which must be a function with a body.
fn parse_function(item: TokenStream2) -> syn::Result<ItemFn> {
    let err = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => return Ok(function),
        Err(err) => err,
    };
    // Another kind of item: say so, rather than syn's bare "expected `fn`". syn's error points
    // at the token where `fn` was expected (`struct`, `enum`, ...), which is the right place.
    let kind = match syn::parse2::<Item>(item) {
        Ok(Item::Const(_)) => "a constant",
        Ok(Item::Enum(_)) => "an enum",
        Ok(Item::ExternCrate(_)) => "an `extern crate`",
        Ok(Item::ForeignMod(_)) => "an `extern` block",
        Ok(Item::Impl(_)) => "an `impl` block",
        Ok(Item::Macro(_)) => "a macro invocation",
        Ok(Item::Mod(_)) => "a module",
        Ok(Item::Static(_)) => "a static",
        Ok(Item::Struct(_)) => "a struct",
        Ok(Item::Trait(_) | Item::TraitAlias(_)) => "a trait",
        Ok(Item::Type(_)) => "a type alias",
        Ok(Item::Union(_)) => "a union",
        Ok(Item::Use(_)) => "a `use` declaration",
        // A function without a body, or something syn cannot parse: its error says best.
        _ => return Err(err),
    };
    Err(syn::Error::new(
        err.span(),
        format!("`#[job]` can only be applied to a function, not to {kind}"),
    ))
}

fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            "a job cannot be `async`: it must be a plain synchronous function",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            "a job cannot be `unsafe`: the host calls it with arbitrary arguments",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a job cannot be generic: its parameter and return types must be concrete",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "a job cannot be variadic",
        ));
    }
    Ok(())
}

fn parameter_types(function: &ItemFn) -> syn::Result<Vec<Type>> {
    function
        .sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Receiver(receiver) => Err(syn::Error::new_spanned(
                receiver,
                "a job cannot take `self`: it must be a free function, outside any `impl` block",
            )),
            FnArg::Typed(typed) => check_owned(&typed.ty).map(|()| (*typed.ty).clone()),
        })
        .collect()
}

fn check_owned(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(reference) => Err(syn::Error::new_spanned(
            reference,
            "job parameters are decoded from the host's message, so they must be owned: \
             use `String` for `&str`, `Vec<T>` for `&[T]`",
        )),
        Type::ImplTrait(imp) => Err(syn::Error::new_spanned(
            imp,
            "job parameters must be concrete types, not `impl Trait`: \
             they are decoded from the host's message",
        )),
        _ => Ok(()),
    }
}

/// Wraps the function's return value so that `JobReturn` encodes it: a `Result` reports its
/// error as a job error; anything else is a value.
fn return_wrapper(output: &ReturnType, krate: &TokenStream2) -> TokenStream2 {
    let is_result = match output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => match ty.as_ref() {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        },
    };
    let span = output.span();
    if is_result {
        quote_spanned!(span=> #krate::__private::Fallible)
    } else {
        quote_spanned!(span=> #krate::__private::Value)
    }
}
