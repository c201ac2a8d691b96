//! A parent creates an anonymous memfd channel, spawns itself as a child that
//! inherits it, and the two talk: no name in /dev/shm, nothing to clean up.
//!
//! ```sh
//! cargo run --release -p shmring --example spawn_child
//! ```

use std::process::Command;
use std::time::Duration;

use shmring::ChannelBuilder;

const VAR: &str = "SHMRING_EXAMPLE_FD";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(VAR).is_some() {
        return child();
    }
    let channel = ChannelBuilder::memfd().capacity(1 << 16).create()?;
    let mut rx = channel.receiver()?;
    let mut command = Command::new(std::env::current_exe()?);
    channel.pass_to(&mut command, VAR);
    let mut child = command.spawn()?;
    loop {
        match rx.recv_vec_timeout(Duration::from_secs(10)) {
            Ok(message) => println!("parent got: {}", String::from_utf8_lossy(&message)),
            Err(shmring::RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(e.into()),
        }
    }
    child.wait()?;
    println!("child exited; channel closed");
    Ok(())
}

fn child() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the parent passed the memfd to us in VAR; this is the one call.
    let channel = unsafe { ChannelBuilder::memfd().from_env(VAR) }?;
    let mut tx = channel.sender()?;
    for i in 0..5 {
        tx.send(format!("hello #{i} from pid {}", std::process::id()).as_bytes())?;
    }
    Ok(())
}
