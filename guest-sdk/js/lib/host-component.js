// In the component: the world's `log` import (componentize-js names it as a module).
import log from 'log';

export const hostLog = log;
