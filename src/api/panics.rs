//! A panic while answering a request: the client gets INTERNAL (not a reset
//! stream, which it would read as CANCELLED, "the client gave up"), the
//! metrics layer around it counts INTERNAL, and the log says where it
//! happened.
//!
//! [`layer`] is tower-http's `CatchPanicLayer` with a gRPC answer. It sits
//! inside the metrics layer (see [`super::server::grpc_layers`]). The panic's
//! location comes from a panic hook ([`install_hook`]) that notes it for the
//! thread that panicked; the layer reads it back on that same thread.

use crate::connector::echo;
use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

thread_local! {
    /// Where the last panic on this thread happened (`file:line:column`).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Notes every panic's location for [`layer`], then runs the hook that was set before (by default:
/// the message on stderr). Installed once per process; later calls do nothing.
pub fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            LAST_PANIC.with(|last| *last.borrow_mut() = location);
            previous(info);
        }));
    });
}

/// Catches a panic in the services inside it and answers INTERNAL.
pub fn layer() -> CatchPanicLayer<PanicIsInternal> {
    install_hook();
    CatchPanicLayer::custom(PanicIsInternal)
}

/// The answer to a panic: INTERNAL, logged with the panic's location and (shortened) message.
#[derive(Debug, Clone, Copy)]
pub struct PanicIsInternal;

impl ResponseForPanic for PanicIsInternal {
    type ResponseBody = tonic::body::Body;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> http::Response<Self::ResponseBody> {
        let message = err
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| err.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| "unknown".into());
        // The message may quote the input that caused it: shortened.
        tracing::error!(%location, panic = %echo(message), "a request handler panicked; answered INTERNAL");
        tonic::Status::internal("the bridge failed while answering this request; see the server log").into_http()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, Service as _, ServiceExt as _};

    #[tokio::test]
    async fn a_panicking_service_answers_internal_and_the_location_is_noted() {
        let panicking = tower::service_fn(|_req: http::Request<()>| async move {
            if true {
                panic!("byte index 4 is not a char boundary; {}", "0".repeat(10_000));
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let mut svc = layer().layer(panicking);
        let res = svc.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
        assert_eq!(res.status(), http::StatusCode::OK, "gRPC errors travel as HTTP 200");
        assert_eq!(res.headers()["grpc-status"], "13");
        assert_eq!(res.headers()["content-type"], "application/grpc");
        // The hook noted the location; answering took it.
        assert!(LAST_PANIC.with(|l| l.borrow().is_none()));
    }

    #[test]
    fn the_hook_notes_where_a_panic_happened() {
        install_hook();
        let line = line!() + 1;
        let _ = std::panic::catch_unwind(|| panic!("here"));
        let noted = LAST_PANIC.with(|l| l.borrow_mut().take()).unwrap();
        assert!(noted.starts_with(&format!("src/api/panics.rs:{line}:")), "{noted}");
    }
}
