//! The sending half of the two-terminal example. Run the receiver first:
//!
//! ```sh
//! cargo run --release -p shmring --example receiver      # terminal 1
//! cargo run --release -p shmring --example sender        # terminal 2
//! ```
//!
//! Each line typed here (or piped in) is one message; end with Ctrl-D.

use std::io::BufRead;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "demo".to_owned());
    let channel = shmring::ChannelBuilder::shm(&name).open()?;
    let mut tx = channel.sender()?;
    eprintln!("connected to shm channel {name:?}; type lines, Ctrl-D to end");
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        match tx.send_timeout(line.as_bytes(), Duration::from_secs(5)) {
            Ok(()) => {}
            Err(shmring::SendTimeoutError::Disconnected) => {
                eprintln!("the receiver has gone");
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
