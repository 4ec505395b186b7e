//! The workload's own wire connections authenticate as the server asks:
//! trust, cleartext password, MD5 and SCRAM-SHA-256, each against a real
//! server set up for it; a wrong or missing password fails with its cause;
//! and hosts are tried in the order tokio-postgres tries them.

use std::time::{Duration, Instant};

use rehearse::postgres::{LocalCluster, Role, Server, connect};
use rehearse::workload::{WireConn, WireError};

use crate::common::heavy;

const HBA: &str = "\
host all u_trust 127.0.0.1/32 trust
host all u_clear 127.0.0.1/32 password
host all u_md5 127.0.0.1/32 md5
host all all 127.0.0.1/32 scram-sha-256
";

fn config_for(cluster: &LocalCluster, user: &str, password: Option<&str>) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host("127.0.0.1").port(cluster.config().get_ports()[0]).user(user).dbname("postgres");
    if let Some(p) = password {
        c.password(p);
    }
    c
}

async fn wire(config: &tokio_postgres::Config) -> Result<WireConn, WireError> {
    WireConn::connect(config, "rehearse-test").await
}

#[test]
fn every_method_the_server_asks_for_authenticates() {
    let _turn = heavy();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let admin = connect(cluster.config(), &Role::Harness).await.unwrap();
        admin
            .batch_execute(
                "SET password_encryption = 'md5'; CREATE ROLE u_md5 LOGIN PASSWORD 'pw-md5';
                 SET password_encryption = 'scram-sha-256';
                 CREATE ROLE u_scram LOGIN PASSWORD 'pw-scram'; CREATE ROLE u_clear LOGIN PASSWORD 'pw-clear';
                 CREATE ROLE u_trust LOGIN",
            )
            .await
            .unwrap();
        std::fs::write(cluster.data_dir().join("pg_hba.conf"), HBA).unwrap();
        admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
        // The reload is asynchronous: it has happened once trust works.
        let deadline = Instant::now() + Duration::from_secs(30);
        while wire(&config_for(&cluster, "u_trust", None)).await.is_err() {
            assert!(Instant::now() < deadline, "the server never reloaded pg_hba.conf");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        for (user, password) in [("u_clear", "pw-clear"), ("u_md5", "pw-md5"), ("u_scram", "pw-scram")] {
            let mut conn = wire(&config_for(&cluster, user, Some(password)))
                .await
                .unwrap_or_else(|e| panic!("{user} with its password: {e}"));
            conn.simple("SELECT 1").await.unwrap();
            match wire(&config_for(&cluster, user, Some("wrong"))).await {
                Err(WireError::Db { code, .. }) => assert_eq!(code, "28P01", "{user} with a wrong password"),
                other => panic!("{user} with a wrong password: {:?}", other.err()),
            }
            match wire(&config_for(&cluster, user, None)).await {
                Err(WireError::NoPassword) => {}
                other => panic!("{user} without a password: {:?}", other.err()),
            }
        }
    });
}

#[test]
fn hosts_are_tried_in_order_until_one_takes_the_session() {
    let _turn = heavy();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = LocalCluster::start(&[]).await.unwrap();
        let port = cluster.config().get_ports()[0];
        // Port 1 on loopback refuses at once; the second host is the server.
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(1)
            .host("localhost")
            .port(port)
            .user("postgres")
            .password(cluster.password())
            .dbname("postgres");
        let mut conn = wire(&config).await.expect("the second host takes the session");
        conn.simple("SELECT 1").await.unwrap();
        // tokio-postgres reaches the same server with the same settings.
        let client = connect(&config, &Role::Harness).await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();

        let mut none = tokio_postgres::Config::new();
        none.host("127.0.0.1").port(1).user("postgres").password("x").dbname("postgres");
        assert!(matches!(wire(&none).await, Err(WireError::Io(_))), "no host answers: the last error");
    });
}
