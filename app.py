"""Start the chat app: `python app.py` (same as `qa serve`); QA_HOST / QA_PORT override the address."""
from qa.app import launch

if __name__ == "__main__":
    launch()
