import type { Command } from './io.js';

// Placeholder until the command lands; exits 1 so nothing mistakes it for working.
export const command: Command = {
  name: 'callback',
  summary: '',
  run: async (_args, io) => {
    io.stderr.write('kfp-notify callback: not built yet\n');
    return 1;
  },
};
