// A small echo program written for `tokio::net`. `net_kernel.rs` includes
// it twice: once after `use tokio::net::{TcpListener, TcpStream}` and once
// after `use tapir_harness::net::{TcpListener, TcpStream}`. Only `bind` and
// `connect`, which take the stack handle on tapir, are defined beside each
// copy; everything here compiles and runs unchanged on both.

/// Accept one connection and echo it until the peer's FIN, then send ours.
/// Returns the bytes echoed.
pub async fn serve(listener: TcpListener) -> std::io::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let (mut stream, peer) = listener.accept().await?;
    assert_eq!(stream.peer_addr()?, peer);
    stream.set_nodelay(true)?;
    let (mut r, mut w) = stream.split();
    let n = tokio::io::copy(&mut r, &mut w).await?;
    w.shutdown().await?;
    Ok(n)
}

/// Send `msg` from one task while reading the echo in another; returns
/// what came back.
pub async fn ask(stream: TcpStream, msg: Vec<u8>) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.set_nodelay(true)?;
    stream.writable().await?;
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        for chunk in msg.chunks(10_000) {
            w.write_all(chunk).await?;
        }
        w.shutdown().await
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await?;
    writer.await.expect("writer task")?;
    Ok(back)
}
