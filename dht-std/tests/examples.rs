//! The examples' demonstrations, run as tests (each starts its own loopback trio and exits).

use core::time::Duration;

#[allow(dead_code)]
#[path = "../examples/thread.rs"]
mod thread_example;

#[allow(dead_code)]
#[path = "../examples/tokio.rs"]
mod tokio_example;

#[test]
fn thread_example_finds_the_announced_peer() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(thread_example::demo().map_err(|e| e.to_string())));
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    assert!(
        line.starts_with("thread: announced to 2 nodes; lookup found [127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn tokio_example_finds_the_announced_peer() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let line = runtime
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(30), tokio_example::demo()).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        line.split(';').next().unwrap(),
        "tokio: announced to 2 nodes",
        "{line}"
    );
    assert!(line.contains("lookup found [127.0.0.1:6881]"), "{line}");
}
