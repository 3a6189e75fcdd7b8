//! Frame reading that holds no buffer while a connection is idle.
//!
//! `FramedRead` keeps its read buffer for the life of the connection, so every idle connection
//! would pin at least one allocation. Here each read lands in a buffer on the stack of the poll
//! call; complete frames are cut from it, and only the bytes of a frame that has not fully
//! arrived are kept on the heap. Between frames the reader owns no allocation at all.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use parley_protocol::{DecodeError, FrameCodec};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes taken from the stream per read call (on the stack, never kept).
const READ_CHUNK: usize = 8 * 1024;

/// Splits a byte stream into frame bodies.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    codec: FrameCodec,
    /// The start of a frame that has not fully arrived; empty (and unallocated) otherwise.
    partial: BytesMut,
    eof: bool,
    /// The last read found the stream empty (returned `Pending`) and no frame has started
    /// since: nothing readable is buffered above the socket.
    drained: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader enforcing `codec`'s frame limit.
    pub fn new(inner: R, codec: FrameCodec) -> Self {
        Self {
            inner,
            codec,
            partial: BytesMut::new(),
            eof: false,
            drained: false,
        }
    }

    /// The stream, for writing (reads go through [`FrameReader::next`]).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// True if every byte read so far was handed out and the stream had no more: the session
    /// may sleep until the socket is readable again.
    pub fn is_drained(&self) -> bool {
        self.drained && self.partial.is_empty()
    }

    /// Changes the frame limit (after login the configured limit replaces the default).
    pub fn set_codec(&mut self, codec: FrameCodec) {
        self.codec = codec;
    }

    /// The next frame body; `None` at a clean end of stream. Cancel-safe: all state lives in
    /// `self`, so a dropped call loses nothing.
    pub async fn next(&mut self) -> Option<Result<Bytes, DecodeError>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, DecodeError>>> {
        loop {
            match self.codec.decode(&mut self.partial) {
                Ok(Some(frame)) => {
                    if self.partial.is_empty() {
                        // Let go of the allocation the frames were cut from.
                        self.partial = BytesMut::new();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            if self.eof {
                return Poll::Ready(if self.partial.is_empty() {
                    None
                } else {
                    let partial = std::mem::take(&mut self.partial);
                    Some(Err(DecodeError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("stream ended inside a frame ({} bytes)", partial.len()),
                    ))))
                });
            }
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            let read = Pin::new(&mut self.inner).poll_read(cx, &mut buf);
            self.drained = read.is_pending();
            if let Err(e) = ready!(read) {
                return Poll::Ready(Some(Err(DecodeError::Io(e))));
            }
            let filled = buf.filled();
            if filled.is_empty() {
                self.eof = true;
            } else {
                self.partial.extend_from_slice(filled);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn frames_split_across_reads_and_reads_across_frames() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(rx, FrameCodec::new(1024));
        let mut bytes = frame(b"one");
        bytes.extend(frame(&[7u8; 300]));
        bytes.extend(frame(b""));
        let writer = tokio::spawn(async move {
            // Odd-sized writes: prefixes and bodies arrive in pieces.
            for piece in bytes.chunks(5) {
                tx.write_all(piece).await.unwrap();
            }
        });
        assert_eq!(reader.next().await.unwrap().unwrap(), &b"one"[..]);
        assert_eq!(reader.next().await.unwrap().unwrap(), &[7u8; 300][..]);
        assert_eq!(reader.next().await.unwrap().unwrap(), &b""[..]);
        writer.await.unwrap();
        assert!(reader.next().await.is_none());
        assert_eq!(
            reader.partial.capacity(),
            0,
            "no buffer kept between frames"
        );
    }

    /// A peer announcing a large frame and sending a little of it makes the reader hold what
    /// arrived, not the announced length (issue 15: half a frame held ~152 KiB for 90 s).
    #[tokio::test]
    async fn a_partial_frame_holds_only_what_arrived() {
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let mut reader = FrameReader::new(rx, FrameCodec::new(1 << 20));
        let mut start = (1u32 << 20).to_be_bytes().to_vec();
        start.extend_from_slice(&[1u8; 100]);
        tx.write_all(&start).await.unwrap();
        let next = futures::FutureExt::now_or_never(reader.next());
        assert!(next.is_none(), "the frame is incomplete");
        assert_eq!(reader.partial.len(), 104);
        assert!(
            reader.partial.capacity() < 4 * 1024,
            "holds {} bytes for 104 received",
            reader.partial.capacity()
        );
    }

    #[tokio::test]
    async fn oversized_frame_and_truncated_stream_are_errors() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(rx, FrameCodec::new(8));
        tx.write_all(&frame(&[0u8; 9])).await.unwrap();
        assert!(matches!(
            reader.next().await,
            Some(Err(DecodeError::TooLarge { len: 9, max: 8 }))
        ));

        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(rx, FrameCodec::new(8));
        tx.write_all(&frame(b"abcd")[..6]).await.unwrap();
        drop(tx);
        assert!(matches!(reader.next().await, Some(Err(DecodeError::Io(_)))));
    }
}
