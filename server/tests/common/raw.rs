//! A minimal raw-protocol client over plain TCP, for tests that need to see or send exact bytes.

use std::net::SocketAddr;

use bytes::BytesMut;
use parley_protocol::frames::{ClientFrame, Request, ServerFrame};
use parley_protocol::ids::RequestId;
use parley_protocol::FrameCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: BytesMut::new(),
            codec: FrameCodec::new(1 << 20),
        }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, id: u64, request: Request) {
        let frame = ClientFrame {
            request_id: RequestId::try_from(id).expect("non-zero id"),
            request,
        };
        self.send_bytes(&frame.encode()).await;
    }

    /// The next frame, or `None` at EOF.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some(body) = self.codec.decode(&mut self.buf).expect("valid frame") {
                return Some(ServerFrame::decode(body).expect("valid server frame"));
            }
            let n = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("frame in time")
                .expect("read");
            if n == 0 {
                return None;
            }
        }
    }

    /// The response to request `id`, skipping pushes.
    pub async fn response(&mut self, id: u64) -> parley_protocol::frames::Response {
        loop {
            match self.recv().await {
                Some(ServerFrame::Response(rid, r)) if rid.get() == id => return r,
                Some(_) => continue,
                None => panic!("connection closed before response {id}"),
            }
        }
    }
}
