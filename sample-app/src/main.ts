import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { configFromEnv } from './app.config.js';
import { createSampleApp } from './app.factory.js';

/** `npm start`: the sample app on http://127.0.0.1:$PORT (default 3000), configured from the environment. */
async function bootstrap(): Promise<void> {
  const app = await createSampleApp(configFromEnv());
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  Logger.log(`Sample app listening on http://127.0.0.1:${port}`, 'Bootstrap');
}

bootstrap().catch((error: unknown) => {
  Logger.error(error instanceof Error ? (error.stack ?? error.message) : String(error), 'Bootstrap');
  process.exitCode = 1;
});
