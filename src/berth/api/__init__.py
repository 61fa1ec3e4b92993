"""The Docker Engine API served by berthd (aiohttp). PascalCase JSON lives only here.
May import: berth.engine and everything below it."""
