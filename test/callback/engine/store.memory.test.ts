import { openMemoryStore } from '../../../callback/store/memory.js';
import { storeContract } from './store.contract.js';

storeContract({ name: 'memory', open: openMemoryStore });
