import asyncio

from notification.app import main

if __name__ == "__main__":
    asyncio.run(main())
