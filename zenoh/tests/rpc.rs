//! An RPC import forwarding many local calls at once, and a call nobody
//! answers. Two Zenoh sessions of this process over loopback: the import in
//! one, a raw queryable (or none) in the other.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use shmring_zenoh::Bridge;
use zenoh::Wait;

/// A local client and the import serving it on `key`.
fn import(
    bridge: &Bridge,
    key: &str,
    timeout: Duration,
) -> (shmring::RpcClient, shmring_zenoh::RpcImport) {
    let (req_tx, req_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let (resp_tx, resp_rx) = shmring::channel::pair(1 << 16).expect("pair");
    let import = bridge
        .import_rpc(key, shmring::RpcServer::new(req_rx, resp_tx), timeout)
        .expect("import");
    (shmring::RpcClient::new(req_tx, resp_rx), import)
}

#[test]
fn an_import_has_many_calls_out_at_once_and_each_gets_its_own_answer() {
    // The queryable answers nothing until it holds all the queries, then
    // answers them last first: the calls finish only if the import has them all
    // out at once, and each only with its own answer.
    const CALLS: usize = 8;
    let port = free_port();
    let key = unique_key("rpc-many");
    let bridge = Bridge::new(listening_session(port));
    let serving = connecting_session(port);
    let held: Arc<Mutex<Vec<zenoh::query::Query>>> = Arc::default();
    let _queryable = serving
        .declare_queryable(key.clone())
        .callback(move |query| {
            let mut held = held.lock().expect("held");
            held.push(query);
            if held.len() == CALLS {
                for query in held.drain(..).rev() {
                    let mut answer = query
                        .payload()
                        .map(|p| p.to_bytes().into_owned())
                        .unwrap_or_default();
                    answer.reverse();
                    query
                        .reply(query.key_expr().clone(), answer)
                        .wait()
                        .expect("reply");
                }
            }
        })
        .wait()
        .expect("queryable");
    let _ready = serving
        .liveliness()
        .declare_token(format!("{key}/ready"))
        .wait()
        .expect("token");
    wait_for_tokens(
        bridge.session(),
        &format!("{key}/ready"),
        1,
        Duration::from_secs(30),
    );
    let (client, import) = import(&bridge, &key, Duration::from_secs(20));
    let client = Arc::new(client);
    let callers: Vec<_> = (0..CALLS)
        .map(|n| {
            let client = client.clone();
            std::thread::spawn(move || {
                let request = format!("call number {n}").into_bytes();
                let answer = client
                    .call_timeout(&request, Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("call {n}: {e}"));
                let mut want = request;
                want.reverse();
                assert_eq!(answer, want, "call {n}");
            })
        })
        .collect();
    for caller in callers {
        caller.join().expect("caller");
    }
    assert_eq!(import.calls(), CALLS as u64);
    assert_eq!(import.in_flight(), 0);
    drop(client);
    import.join().expect("the import ends when its clients go");
}

#[test]
fn a_call_nobody_answers_is_a_remote_error_after_the_import_timeout() {
    let port = free_port();
    let key = unique_key("rpc-none");
    let bridge = Bridge::new(listening_session(port));
    let (client, import) = import(&bridge, &key, Duration::from_millis(300));
    match client.call_timeout(b"anyone?", Duration::from_secs(20)) {
        Err(shmring::Error::Remote { message }) => {
            assert!(message.contains("no reply"), "{message}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(import.in_flight(), 0);
    import.stop().expect("stop");
}
