// `kfp-notify <args>` from the bench build: the product exactly as bin/kfp-notify.mjs runs it.
import { main } from '../../cli/main.js';

process.exitCode = await main(process.argv.slice(2));
