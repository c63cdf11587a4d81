import { describe, expect, it } from '@jest/globals';
import { definePolicy } from '../../lib/index.js';
import { DeleteEventRecorder } from '../fixtures/delete-event-recorder.js';
import { HookJournal } from '../fixtures/hook-journal.js';
import { useLibraryApp } from '../fixtures/library-app.js';
import { Author, Book } from '../fixtures/library.entities.js';
import { countTree, intactState, seedAuthor, seedBystander, treeState } from '../fixtures/library.seed.js';
import { TRIGGERS } from '../fixtures/triggers.js';

const journalIds = (hook: string) =>
  HookJournal.entries
    .filter((e) => e.hook === hook)
    .map((e) => e.id as number)
    .sort((a, b) => a - b);

const NOTHING_LEFT = { author: 0, book: 0, review: 0, article: 0, profile: 0, avatar: 0 };

/** DESIGN 2: `destroy` runs the children's hooks and subscribers; `deleteAll` runs none. */
describe('child hooks', () => {
  describe('under destroy', () => {
    const books = new DeleteEventRecorder(Book);
    const app = useLibraryApp(
      'deletion_sync_hooks_destroy',
      { policies: [definePolicy(Author, { books: 'destroy', profile: 'destroy' }), definePolicy(Book, { reviews: 'destroy' })] },
      (booted) => booted.orm.em.getEventManager().registerSubscriber(books),
    );

    describe.each(TRIGGERS)('through %s', (_name, trigger) => {
      it('runs @BeforeDelete/@AfterDelete once per child, at every level', async () => {
        const victim = await seedAuthor(app().em(), { name: 'victim', books: 3, reviews: 2, profile: true });
        await seedAuthor(app().em(), { name: 'bystander', books: 2, reviews: 1, profile: true });

        await trigger.run(app(), Author, victim.authorId);

        expect(journalIds('Book.beforeDelete')).toEqual(victim.bookIds);
        expect(journalIds('Book.afterDelete')).toEqual(victim.bookIds);
        expect(journalIds('Review.beforeDelete')).toEqual(victim.reviewIds);
        expect(journalIds('Profile.beforeDelete')).toEqual(victim.profileIds);
        expect(HookJournal.entries).toHaveLength(3 + 3 + 6 + 1);
        expect(await countTree(app().em(), victim)).toEqual(NOTHING_LEFT);
      });

      it('shows each child to an application EventSubscriber registered for Book', async () => {
        books.clear();
        const victim = await seedAuthor(app().em(), { name: 'victim', books: 4 });
        await seedAuthor(app().em(), { name: 'bystander', books: 2 });

        await trigger.run(app(), Author, victim.authorId);

        expect(books.ids('beforeDelete')).toEqual(victim.bookIds);
        expect(books.ids('afterDelete')).toEqual(victim.bookIds);
        expect(books.events).toHaveLength(8);
      });
    });
  });

  describe('under deleteAll', () => {
    const books = new DeleteEventRecorder(Book);
    const app = useLibraryApp(
      'deletion_sync_hooks_delete_all',
      { policies: [definePolicy(Author, { books: 'deleteAll', profile: 'deleteAll' })] },
      (booted) => booted.orm.em.getEventManager().registerSubscriber(books),
    );

    describe.each(TRIGGERS)('through %s', (_name, trigger) => {
      it('runs no entity hook and no subscriber event for the children', async () => {
        books.clear();
        const victim = await seedAuthor(app().em(), { name: 'victim', books: 3, profile: true });
        const bystander = await seedBystander(app().em());

        await trigger.run(app(), Author, victim.authorId);

        expect(await countTree(app().em(), victim)).toEqual(NOTHING_LEFT);
        expect(await treeState(app().em(), bystander)).toEqual(intactState(bystander));
        expect(HookJournal.entries).toEqual([]);
        expect(books.events).toEqual([]);
      });
    });

    it('does deliver Book events when a book itself is removed (control)', async () => {
      books.clear();
      const author = await seedAuthor(app().em(), { books: 1 });
      const em = app().em();
      em.remove(await em.findOneOrFail(Book, author.bookIds[0]!));
      await em.flush();

      expect(journalIds('Book.beforeDelete')).toEqual(author.bookIds);
      expect(books.ids('afterDelete')).toEqual(author.bookIds);
    });
  });
});
