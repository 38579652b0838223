//! PostgreSQL failures as `StoreError`s, classified by SQLSTATE and never
//! by wording: what the proxy must answer 503 for, what `init` must fix.

use tokio_postgres::error::SqlState;

use crate::store::error::StoreError;

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            // No server answer at all: I/O, a closed connection, TLS, a
            // refused connect, a row that does not decode.
            return if err.is_closed() || std::error::Error::source(&err).is_some() {
                StoreError::Unavailable(describe(&err))
            } else {
                StoreError::Postgres(describe(&err))
            };
        };
        let text = format!("{} ({})", db.message(), db.code().code());
        let code = db.code();
        if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN {
            return StoreError::Schema(text);
        }
        match &code.code()[..2] {
            // connection exception, insufficient resources, operator
            // intervention (shutdown, cannot connect now), system error,
            // invalid authorization, invalid catalog name (no database).
            "08" | "53" | "57" | "58" | "28" | "3D" => StoreError::Unavailable(text),
            // Lock or serialization trouble: the same read should succeed.
            "40" | "55" => StoreError::Busy(text),
            _ => StoreError::Postgres(text),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError as P;
        match err {
            P::Backend(e) => StoreError::from(e),
            P::Timeout(_) => StoreError::Busy("no PostgreSQL connection free in time".into()),
            other => StoreError::Unavailable(format!("PostgreSQL pool: {other}")),
        }
    }
}

/// The error with its causes: tokio-postgres's own text is terse ("error
/// connecting to server") and the reason is in the chain.
fn describe(err: &tokio_postgres::Error) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
