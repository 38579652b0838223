//! The PostgreSQL test harness itself: a cluster starts, answers, stops
//! and starts again on the same socket.

mod pg_support;

use pg_support::{PgServer, DATABASE};

#[test]
fn a_throwaway_cluster_answers_stops_and_restarts() {
    let Some(mut pg) = PgServer::start() else {
        return;
    };
    assert_eq!(pg.psql(DATABASE, "SELECT 1 + 1"), "2");
    assert_eq!(pg.psql(DATABASE, "SHOW fsync"), "off");
    assert_eq!(pg.psql(DATABASE, "SHOW listen_addresses"), "");
    pg.psql(
        DATABASE,
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)",
    );
    pg.stop();
    pg.start_again();
    assert_eq!(pg.psql(DATABASE, "SELECT v FROM kept"), "7");
    let socket = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port));
    assert!(socket.exists(), "{} missing", socket.display());
}
