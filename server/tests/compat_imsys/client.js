// Lines 560-627 of /work/shared/seeds/003_4a44bf8363cbc573.txt (the IM系统 document's
// "JavaScript WebSocket客户端" example), verbatim after this header. server/tests/compat_imsys.rs
// substitutes only the base URL ('ws://localhost:8080/ws') before running it.
class IMClient {
  constructor(url, userId) {
    this.url = url;
    this.userId = userId;
    this.ws = null;
  }

  connect() {
    this.ws = new WebSocket(this.url);
    
    this.ws.onopen = () => {
      console.log('Connected to IM server');
      this.login();
    };
    
    this.ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.handleMessage(message);
    };
    
    this.ws.onclose = () => {
      console.log('Disconnected from IM server');
    };
  }

  login() {
    const loginMsg = {
      type: 'login',
      data: {
        user_id: this.userId,
        token: 'test_token',
        platform: 'web'
      },
      timestamp: Date.now()
    };
    this.ws.send(JSON.stringify(loginMsg));
  }

  sendMessage(receiverId, content) {
    const msg = {
      type: 'send_message',
      data: {
        receiver_id: receiverId,
        type: 'text',
        content: content
      },
      timestamp: Date.now()
    };
    this.ws.send(JSON.stringify(msg));
  }

  handleMessage(message) {
    switch (message.type) {
      case 'new_message':
        console.log('New message:', message.data);
        break;
      case 'new_group_message':
        console.log('New group message:', message.data);
        break;
      default:
        console.log('Received message:', message);
    }
  }
}

// 使用示例
const client = new IMClient('ws://localhost:8080/ws', 'user123');
client.connect();
