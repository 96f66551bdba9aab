//! Errors at the GraphQL edge: each with a stable `extensions.code`, and a
//! message that never carries engine or storage internals.

use async_graphql::ErrorExtensions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    BadInput,
    NotFound,
    RateLimited,
    Timeout,
    NotReady,
    /// A request body over the configured size (HTTP 413).
    TooLarge,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::BadInput => "BAD_INPUT",
            Code::NotFound => "NOT_FOUND",
            Code::RateLimited => "RATE_LIMITED",
            Code::Timeout => "TIMEOUT",
            Code::NotReady => "NOT_READY",
            Code::TooLarge => "TOO_LARGE",
            Code::Internal => "INTERNAL",
        }
    }
}

/// A client-facing error.
pub fn error(code: Code, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, e| e.set("code", code.as_str()))
}

pub fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    error(Code::BadInput, message)
}

pub fn not_found(message: impl Into<String>) -> async_graphql::Error {
    error(Code::NotFound, message)
}

pub fn forbidden(message: impl Into<String>) -> async_graphql::Error {
    error(Code::Forbidden, message)
}

/// Log the real cause; tell the client only that it was ours.
pub fn internal(cause: impl std::fmt::Display) -> async_graphql::Error {
    let id = crate::lake::new_run_id();
    tracing::error!(error_id = %id, %cause, "internal error");
    error(Code::Internal, format!("internal error (reference {id})"))
}
