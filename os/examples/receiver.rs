//! The receiving half of the two-terminal example: creates the channel and prints
//! each message until the sender leaves. See `sender.rs`.

use shmring::SegmentBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "demo".to_owned());
    // `reclaim`: a channel of this name left behind by a crashed run is replaced.
    let channel = shmring::ChannelBuilder::shm(&name)
        .capacity(1 << 16)
        .reclaim(true)
        .create()?;
    let mut rx = channel.receiver()?;
    eprintln!("created shm channel {name:?}; waiting for a sender");
    loop {
        match rx.recv_vec() {
            Ok(message) => println!("{}", String::from_utf8_lossy(&message)),
            Err(shmring::RecvError::Disconnected) => {
                eprintln!("the sender has gone");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The channel's name is removed when `channel` and `rx` drop.
}
