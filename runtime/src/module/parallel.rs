//! Validating a module's function bodies on every core: they are most of a large module's
//! validation (40 of 70 ms for wasp's Python runner, on one core), and independent of one
//! another once the sections before them are validated.

use super::Bodies;
use crate::error::ModuleError;
use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};
use wasmparser::{
    BinaryReaderError, FuncToValidate, FuncValidatorAllocations, FunctionBody, Parser,
    ValidPayload, Validator, ValidatorResources, WasmFeatures, types::Types,
};

/// Below this many bytes of function bodies, threads cost more than they save.
const PARALLEL_FROM: usize = 1 << 20;

/// One function to validate, with its body.
type Function<'a> = (FuncToValidate<ValidatorResources>, FunctionBody<'a>);

/// What `Validator::validate_all` does, with the function bodies checked on up to
/// `available_parallelism` threads, or not at all if `bodies` leaves them to the compiler;
/// the error ([`ModuleError::Invalid`]) is the first one in the module's order, as when
/// checked one after another.
pub(super) fn validate_all(
    features: WasmFeatures,
    bytes: &[u8],
    bodies: Bodies,
) -> Result<Types, ModuleError> {
    let invalid = |err: BinaryReaderError| ModuleError::Invalid(err.to_string());
    let mut validator = Validator::new_with_features(features);
    let mut parser = Parser::new(0);
    parser.set_features(features);
    let mut functions = Vec::new();
    let mut outermost = None;
    for payload in parser.parse_all(bytes) {
        match validator
            .payload(&payload.map_err(invalid)?)
            .map_err(invalid)?
        {
            ValidPayload::Func(function, body) => {
                if bodies == Bodies::AtLoad {
                    functions.push((function, body));
                }
            }
            // Each nested module or component ends too; the outermost ends last.
            ValidPayload::End(types) => outermost = Some(types),
            ValidPayload::Ok | ValidPayload::Parser(_) => {}
        }
    }
    check_bodies(functions).map_err(invalid)?;
    // Parsing fails before a module could end unfinished.
    outermost.ok_or_else(|| ModuleError::Invalid("the module does not end".into()))
}

/// Checks `functions` in contiguous shares of about equal size, one per thread.
fn check_bodies(functions: Vec<Function<'_>>) -> Result<(), BinaryReaderError> {
    let total: usize = functions.iter().map(|(_, body)| body.range().len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if total < PARALLEL_FROM || threads < 2 {
        return check_in_order(functions);
    }
    let mut shares = split(functions, total.div_ceil(threads)).into_iter();
    let first = shares.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let rest: Vec<_> = shares.map(|share| start(scope, share)).collect();
        let mut results = vec![check_in_order(first)];
        for share in rest {
            results.push(match share {
                Share::Started(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Share::Here(share) => check_in_order(share),
            });
        }
        results.into_iter().collect()
    })
}

/// A share of the functions: being checked on a thread of its own, or left for the calling
/// thread (its thread could not be started: a limit on threads).
enum Share<'scope, 'a> {
    Started(ScopedJoinHandle<'scope, Result<(), BinaryReaderError>>),
    Here(Vec<Function<'a>>),
}

/// Starts checking `share` on a thread of `scope`, or gives it back.
fn start<'scope, 'a: 'scope>(
    scope: &'scope Scope<'scope, '_>,
    share: Vec<Function<'a>>,
) -> Share<'scope, 'a> {
    // The share goes to the thread once it runs, so that a thread refused keeps nothing.
    let (give, take) = mpsc::channel::<Vec<Function<'a>>>();
    let started = std::thread::Builder::new()
        .name("wasp-validate".into())
        .spawn_scoped(scope, move || {
            check_in_order(take.recv().unwrap_or_default())
        });
    match started {
        Ok(thread) => {
            // The thread holds the receiver until it has received: this cannot fail.
            let _ = give.send(share);
            Share::Started(thread)
        }
        Err(_) => Share::Here(share),
    }
}

/// `functions` cut, in order, into runs of at least `size` bytes of bodies (the last may
/// be shorter).
fn split(functions: Vec<Function<'_>>, size: usize) -> Vec<Vec<Function<'_>>> {
    let mut shares = vec![Vec::new()];
    let mut filled = 0;
    for function in functions {
        if filled >= size {
            shares.push(Vec::new());
            filled = 0;
        }
        filled += function.1.range().len();
        shares.last_mut().expect("never empty").push(function);
    }
    shares
}

/// Checks `functions` one after another, reusing one set of allocations.
fn check_in_order(functions: Vec<Function<'_>>) -> Result<(), BinaryReaderError> {
    let mut allocations = FuncValidatorAllocations::default();
    for (function, body) in functions {
        let mut validator = function.into_validator(allocations);
        validator.validate(&body)?;
        allocations = validator.into_allocations();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leb(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn section(id: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(content.len(), out);
        out.extend_from_slice(content);
    }

    /// A module of `count` functions `() -> ()`, each about 3 KB of code; those in `bad`
    /// add two numbers they do not have.
    fn module(count: usize, bad: &[usize]) -> Vec<u8> {
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        section(1, &[1, 0x60, 0, 0], &mut bytes);
        let mut functions = Vec::new();
        leb(count, &mut functions);
        functions.extend(std::iter::repeat_n(0, count));
        section(3, &functions, &mut bytes);
        let mut code = Vec::new();
        leb(count, &mut code);
        for index in 0..count {
            let mut body = vec![0];
            for _ in 0..1000 {
                body.extend_from_slice(&[0x41, 0x01, 0x1a]); // i32.const 1, drop
            }
            if bad.contains(&index) {
                body.push(0x6a); // i32.add
            }
            body.push(0x0b);
            leb(body.len(), &mut code);
            code.extend_from_slice(&body);
        }
        section(10, &code, &mut bytes);
        bytes
    }

    fn in_order(bytes: &[u8]) -> Result<(), String> {
        Validator::new_with_features(crate::module::FEATURES)
            .validate_all(bytes)
            .map(|_| ())
            .map_err(|err| err.to_string())
    }

    fn in_parallel(bytes: &[u8]) -> Result<(), String> {
        validate_all(crate::module::FEATURES, bytes, Bodies::AtLoad)
            .map(|_| ())
            .map_err(|err| match err {
                ModuleError::Invalid(message) => message,
                other => panic!("not an invalid module: {other}"),
            })
    }

    #[test]
    fn a_large_module_gives_the_first_error_in_its_order() {
        let count = 2 * PARALLEL_FROM / 3000;
        let valid = module(count, &[]);
        assert!(in_parallel(&valid).is_ok());
        for bad in [
            vec![count - 1],
            vec![3, count - 2],
            vec![count / 2, count / 2 + 1],
        ] {
            let invalid = module(count, &bad);
            let error = in_parallel(&invalid).expect_err("invalid");
            assert_eq!(Err(error), in_order(&invalid), "bad functions {bad:?}");
        }
    }

    #[test]
    fn bodies_left_to_the_compiler_are_not_checked_but_the_rest_is() {
        let invalid = module(3, &[1]);
        assert!(validate_all(crate::module::FEATURES, &invalid, Bodies::AtCompile).is_ok());
        let truncated = &invalid[..invalid.len() - 10];
        assert!(validate_all(crate::module::FEATURES, truncated, Bodies::AtCompile).is_err());
    }

    #[test]
    fn a_small_module_is_checked_alike() {
        let invalid = module(3, &[1]);
        assert_eq!(in_parallel(&invalid), in_order(&invalid));
        assert!(in_parallel(&module(3, &[])).is_ok());
    }

    #[test]
    fn shares_keep_the_order_and_every_function() {
        let bytes = module(10, &[]);
        let mut validator = Validator::new_with_features(crate::module::FEATURES);
        let mut functions = Vec::new();
        for payload in Parser::new(0).parse_all(&bytes) {
            if let ValidPayload::Func(function, body) =
                validator.payload(&payload.expect("parses")).expect("valid")
            {
                functions.push((function, body));
            }
        }
        let starts: Vec<usize> = functions.iter().map(|(_, b)| b.range().start).collect();
        let each = functions[0].1.range().len();
        let shares = split(functions, 3 * each);
        assert_eq!(
            shares.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let after: Vec<usize> = shares
            .iter()
            .flatten()
            .map(|(_, b)| b.range().start)
            .collect();
        assert_eq!(after, starts);
    }
}
