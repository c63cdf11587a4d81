/** What `POST /authors` answers: the new author's id and how many rows were created. */
export interface CreatedAuthor {
  id: number;
  name: string;
  books: number;
  reviews: number;
  followers: number;
  articles: number;
}

/** What `GET /authors/:id` answers: the author and the rows that hang from it today. */
export interface AuthorSummary extends CreatedAuthor {
  contractEndsAt: Date | null;
  hasProfile: boolean;
}

/** One line of `GET /authors/:id/books`. */
export interface BookLine {
  id: number;
  title: string;
  legalHold: boolean;
}
