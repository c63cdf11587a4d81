/** What `GET /books/:id` answers. */
export interface BookSummary {
  id: number;
  title: string;
  authorId: number;
  legalHold: boolean;
  reviews: number;
}
