# Lines 633-678 of /work/shared/seeds/003_4a44bf8363cbc573.txt (the IM系统 document's
# "Python HTTP客户端" example), verbatim after this header. server/tests/compat_imsys.rs
# substitutes only the base URL ('http://localhost:8080') before running it.
import requests
import json

class IMClient:
    def __init__(self, base_url, user_id):
        self.base_url = base_url
        self.user_id = user_id
        self.headers = {'X-User-ID': user_id}

    def send_message(self, receiver_id, content, group_id=None):
        url = f"{self.base_url}/api/v1/messages"
        data = {
            'receiver_id': receiver_id,
            'type': 'text',
            'content': content
        }
        if group_id:
            data['group_id'] = group_id
        
        response = requests.post(url, json=data, headers=self.headers)
        return response.json()

    def get_offline_messages(self, last_message_id=None, limit=50):
        url = f"{self.base_url}/api/v1/messages/offline"
        params = {'limit': limit}
        if last_message_id:
            params['last_message_id'] = last_message_id
        
        response = requests.get(url, params=params, headers=self.headers)
        return response.json()

    def create_group(self, name, description, members):
        url = f"{self.base_url}/api/v1/groups"
        data = {
            'name': name,
            'description': description,
            'members': members
        }
        
        response = requests.post(url, json=data, headers=self.headers)
        return response.json()

# 使用示例
client = IMClient('http://localhost:8080', 'user123')
result = client.send_message('user456', 'Hello!')
print(result)
